package server

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/automanaged"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/k8s"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"
	"github.com/asynkron/protoactor-go/remote"

	"github.com/presenced/presenced/actors"
	"github.com/presenced/presenced/cluster"
)

// ClusterConfig makes the node a member of a Proto.Actor cluster whose user actors are grains.
// It needs RedisURL: the members share the bus and the store.
type ClusterConfig struct {
	Name string // cluster name (default "presenced"); members of one cluster share it
	Host string // address the other members reach this node at (default 127.0.0.1)
	Port int    // actor remoting port (gRPC)
	// Provider is how members find each other: "automanaged" (the default) or "k8s".
	//
	// automanaged: every member serves its state on AutoManagePort over HTTP (on all
	// interfaces: firewall it) and polls Members, the host:AutoManagePort of every member, this
	// one included.
	//
	// k8s: Proto.Actor's Kubernetes provider. Members are the pods of the cluster, found and
	// labelled through the API server with the pod's service account (in-cluster config; it
	// needs get/list/watch/patch on pods, see deploy/k8s). Host must be the pod's IP.
	Provider       string
	AutoManagePort int
	Members        []string
	// JoinTimeout bounds the wait for this member to see itself in the member list (20 s).
	JoinTimeout time.Duration
}

// Cluster providers (ClusterConfig.Provider).
const (
	ProviderAutomanaged = "automanaged"
	ProviderK8s         = "k8s"
)

func (c *ClusterConfig) setDefaults() error {
	if c.Name == "" {
		c.Name = "presenced"
	}
	if c.Host == "" {
		c.Host = "127.0.0.1"
	}
	switch c.Provider {
	case "", ProviderAutomanaged:
		c.Provider = ProviderAutomanaged
		if c.Port <= 0 || c.AutoManagePort <= 0 || len(c.Members) == 0 {
			return errors.New("server: cluster needs a remoting port, an automanage port and the member list")
		}
	case ProviderK8s:
		if c.Port <= 0 {
			return errors.New("server: cluster needs a remoting port")
		}
		if c.AutoManagePort != 0 || len(c.Members) != 0 {
			return errors.New("server: the k8s provider finds members through the Kubernetes API: drop the automanage port and the member list")
		}
	default:
		return fmt.Errorf("server: unknown cluster provider %q: want %s or %s", c.Provider, ProviderAutomanaged, ProviderK8s)
	}
	if c.JoinTimeout <= 0 {
		c.JoinTimeout = 20 * time.Second
	}
	return nil
}

var startMu sync.Mutex

// member is this node's view of the cluster, kept from topology events (MemberList itself is
// not safe to read from other goroutines in this Proto.Actor version).
type member struct {
	c       *pcluster.Cluster
	members atomic.Int64
}

// startCluster starts this node as a member and waits until it sees a member list. onLeft runs
// (on the event stream's goroutine: it must not block) with the addresses of members that left.
func startCluster(cfg *ClusterConfig, system *actor.ActorSystem, d *actors.Deps, onLeft func(self string, members, left []string)) (*member, error) {
	m := &member{}
	joined := make(chan struct{})
	var once sync.Once
	self := fmt.Sprintf("%s:%d", cfg.Host, cfg.Port)
	d.Member = self
	system.EventStream.Subscribe(func(evt any) {
		t, ok := evt.(*pcluster.ClusterTopology)
		if !ok {
			return
		}
		m.members.Store(int64(len(t.Members)))
		if len(t.Members) > 0 {
			once.Do(func() { close(joined) })
		}
		if len(t.Left) > 0 {
			onLeft(self, addresses(t.Members), addresses(t.Left))
		}
	})
	kind := pcluster.NewKind(cluster.UserKind, actors.UserProps(d))
	var provider pcluster.ClusterProvider
	if cfg.Provider == ProviderK8s {
		p, err := k8s.New()
		if err != nil {
			return nil, fmt.Errorf("server: k8s cluster provider: %w (it works only inside a Kubernetes pod; use the automanaged provider elsewhere)", err)
		}
		provider = p
	} else {
		provider = automanaged.NewWithConfig(time.Second, cfg.AutoManagePort, cfg.Members...)
	}
	m.c = pcluster.New(system, pcluster.Configure(cfg.Name, provider, disthash.New(),
		remote.Configure(cfg.Host, cfg.Port), pcluster.WithKinds(kind)))
	// Remote.Start sets gRPC's process-wide logger: two members starting in one process (tests)
	// would race on it.
	startMu.Lock()
	m.c.StartMember()
	startMu.Unlock()
	select {
	case <-joined:
		return m, nil
	case <-time.After(cfg.JoinTimeout):
		m.c.Shutdown(false)
		return nil, fmt.Errorf("server: cluster member %s:%d saw no members within %v: check --cluster-members", cfg.Host, cfg.Port, cfg.JoinTimeout)
	}
}

func addresses(ms []*pcluster.Member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Address()
	}
	return out
}
