package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// The deploy/ files are YAML that nothing in the build reads; these tests parse them and check
// that what they tell presenced is accepted by presenced and agrees with its timings.

// decodeAll decodes every YAML document of the file at path into a new T.
func decodeAll[T any](t *testing.T, path string) []T {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []T
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var v T
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, v)
	}
}

// TestDeployYAMLParses: every YAML file under deploy/ is valid YAML.
func TestDeployYAMLParses(t *testing.T) {
	var files []string
	err := filepath.WalkDir("../../deploy", func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (strings.HasSuffix(p, ".yml") || strings.HasSuffix(p, ".yaml")) {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 2 {
		t.Fatalf("found %v, want the compose file and the k8s manifests", files)
	}
	for _, f := range files {
		if docs := decodeAll[yaml.Node](t, f); len(docs) == 0 {
			t.Errorf("%s: no YAML document", f)
		}
	}
}

// TestDeployCompose: each node's environment is accepted by presenced, the nodes list one
// another as members, the health check is the default internal listener's /healthz, and
// Docker waits long enough for a drain.
func TestDeployCompose(t *testing.T) {
	type service struct {
		Environment     map[string]string       `yaml:"environment"`
		Healthcheck     struct{ Test []string } `yaml:"healthcheck"`
		StopGracePeriod string                  `yaml:"stop_grace_period"`
	}
	var compose struct {
		Services map[string]service `yaml:"services"`
	}
	docs := decodeAll[yaml.Node](t, "../../deploy/docker-compose.yml")
	if err := docs[0].Decode(&compose); err != nil {
		t.Fatal(err)
	}
	nodes := 0
	for name, svc := range compose.Services {
		if !strings.HasPrefix(name, "presenced") {
			continue
		}
		nodes++
		t.Run(name, func(t *testing.T) {
			settings := envNames()
			for k, v := range svc.Environment {
				if !settings[k] {
					t.Errorf("%s is no presenced setting (presenced ignores it)", k)
				}
				t.Setenv(k, v)
			}
			o, err := parse(nil)
			if err != nil {
				t.Fatalf("presenced refuses the environment: %v", err)
			}
			self := fmt.Sprintf("%s:%d", o.clusterHost, o.amPort)
			if o.clusterPort == 0 || o.redisURL == "" || !slices.Contains(strings.Split(o.members, ","), self) {
				t.Errorf("not a cluster member over Redis listing itself (%s) in %q", self, o.members)
			}
			if !slices.Equal(svc.Healthcheck.Test, []string{"CMD", "/presenced", "healthcheck"}) || o.internalListen != defaultInternalListen() {
				t.Errorf("health check %v against --internal-listen %s: `presenced healthcheck` probes %s", svc.Healthcheck.Test, o.internalListen, defaultHealthURL)
			}
			grace, err := time.ParseDuration(svc.StopGracePeriod)
			if err != nil || grace <= o.drainDelay+o.shutdown+internalShutdownTimeout {
				t.Errorf("stop_grace_period %q does not cover drain %v + shutdown %v + %v", svc.StopGracePeriod, o.drainDelay, o.shutdown, internalShutdownTimeout)
			}
		})
	}
	if nodes != 3 {
		t.Errorf("%d presenced services, want 3", nodes)
	}
}

// envNames are the variables presenced reads, one per setting.
func envNames() map[string]bool {
	var o options
	names := map[string]bool{}
	newFlagSet(&o).VisitAll(func(f *flag.Flag) { names[envName(f.Name)] = true })
	return names
}

// TestDockerfileHealthcheck: the image's HEALTHCHECK is `presenced healthcheck` with its
// default URL, which the image's --internal-listen serves.
func TestDockerfileHealthcheck(t *testing.T) {
	b, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var env, check string
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "ENV PRESENCED_INTERNAL_LISTEN="); ok {
			env = v
		}
		if strings.HasPrefix(line, "HEALTHCHECK ") {
			_, check, _ = strings.Cut(line, " CMD ")
		}
	}
	if check != `["/presenced", "healthcheck"]` {
		t.Errorf("HEALTHCHECK CMD %s, want [\"/presenced\", \"healthcheck\"]", check)
	}
	host, port, err := net.SplitHostPort(env)
	loopback := host == "" || host == "0.0.0.0" || host == "127.0.0.1" // what 127.0.0.1 reaches
	if err != nil || !loopback || defaultHealthURL != "http://127.0.0.1:"+port+"/healthz" {
		t.Errorf("ENV PRESENCED_INTERNAL_LISTEN=%s does not serve %s", env, defaultHealthURL)
	}
}

// k8sObject is the part of a manifest TestDeployKubernetes reads.
type k8sObject struct {
	Kind     string
	Metadata struct{ Name string }
	Spec     struct {
		Replicas int
		Template struct {
			Spec struct {
				TerminationGracePeriodSeconds int    `yaml:"terminationGracePeriodSeconds"`
				ServiceAccountName            string `yaml:"serviceAccountName"`
				EnableServiceLinks            *bool  `yaml:"enableServiceLinks"`
				Containers                    []struct {
					Args  []string
					Env   []struct{ Name string }
					Ports []struct {
						Name          string
						ContainerPort int `yaml:"containerPort"`
					}
					LivenessProbe  k8sProbe `yaml:"livenessProbe"`
					ReadinessProbe k8sProbe `yaml:"readinessProbe"`
					Lifecycle      struct {
						PreStop struct{ Sleep struct{ Seconds int } } `yaml:"preStop"`
					}
				}
			}
		}
	}
}

type k8sProbe struct {
	HTTPGet struct{ Path, Port string } `yaml:"httpGet"`
}

// TestDeployKubernetes: the Deployment's three pods run as the bound ServiceAccount without
// Service links, its flags are accepted by presenced and its variables are presenced settings,
// its probes hit the internal listener, membership is the k8s provider's on the remoting port,
// and the grace period covers preStop, drain delay, shutdown timeout and the internal
// listener's stop.
func TestDeployKubernetes(t *testing.T) {
	objs := decodeAll[k8sObject](t, "../../deploy/k8s/presenced.yaml")
	byKind := map[string][]k8sObject{}
	for _, o := range objs {
		byKind[o.Kind] = append(byKind[o.Kind], o)
	}
	for kind, n := range map[string]int{"Deployment": 1, "PodDisruptionBudget": 1, "Service": 1, "ServiceAccount": 1, "Role": 1, "RoleBinding": 1} {
		if len(byKind[kind]) != n {
			t.Fatalf("%d %s, want %d (kinds: %v)", len(byKind[kind]), kind, n, byKind)
		}
	}
	dep := byKind["Deployment"][0]
	pod := dep.Spec.Template.Spec
	if pod.ServiceAccountName != byKind["ServiceAccount"][0].Metadata.Name {
		t.Errorf("the pods run as %q, not as the ServiceAccount the Role is bound to", pod.ServiceAccountName)
	}
	if dep.Spec.Replicas != 3 {
		t.Errorf("%d replicas, want 3", dep.Spec.Replicas)
	}
	if pod.EnableServiceLinks == nil || *pod.EnableServiceLinks {
		t.Error("enableServiceLinks is not false: the Service's PRESENCED_* link variables would reach presenced")
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Containers))
	}
	c := pod.Containers[0]
	o, err := parse(c.Args)
	if err != nil {
		t.Fatalf("presenced refuses the Deployment's args: %v", err)
	}
	settings := envNames()
	for _, e := range c.Env {
		if !settings[e.Name] {
			t.Errorf("env %s is no presenced setting (presenced ignores it)", e.Name)
		}
	}
	ports := map[string]int{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	_, port, err := net.SplitHostPort(o.internalListen)
	if err != nil || port != fmt.Sprint(ports["internal"]) {
		t.Errorf("--internal-listen %s is not the container port named internal (%d)", o.internalListen, ports["internal"])
	}
	if c.LivenessProbe.HTTPGet != (struct{ Path, Port string }{"/healthz", "internal"}) ||
		c.ReadinessProbe.HTTPGet != (struct{ Path, Port string }{"/readyz", "internal"}) {
		t.Errorf("probes: liveness %+v, readiness %+v", c.LivenessProbe.HTTPGet, c.ReadinessProbe.HTTPGet)
	}
	if o.clusterProvider != "k8s" || o.members != "" || o.amPort != 0 || ports["remoting"] != o.clusterPort {
		t.Errorf("want the k8s provider on the remoting port: provider %q, members %q, automanage %d, ports %v", o.clusterProvider, o.members, o.amPort, ports)
	}
	preStop := time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	grace := time.Duration(pod.TerminationGracePeriodSeconds) * time.Second
	if preStop <= 0 || grace <= preStop+o.drainDelay+o.shutdown+internalShutdownTimeout {
		t.Errorf("terminationGracePeriodSeconds %v does not cover preStop %v + drain %v + shutdown %v + %v", grace, preStop, o.drainDelay, o.shutdown, internalShutdownTimeout)
	}
}
