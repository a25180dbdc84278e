// Package leak holds the goroutine-leak checks shared by every package that runs actors.
package leak

import "go.uber.org/goleak"

// Options are the goleak options every package that runs actors uses. Proto.Actor's log
// throttles each start one goroutine that ends by itself after its period; their names depend on
// inlining, so each known variant is listed.
func Options() []goleak.Option {
	var opts []goleak.Option
	for _, f := range []string{
		"github.com/asynkron/protoactor-go/actor.NewThrottle.func1.1",
		"github.com/asynkron/protoactor-go/actor.NewThrottleWithLogger.func1.1",
		"github.com/asynkron/protoactor-go/actor.NewDeadLetter.NewThrottle.func4.1",
		"github.com/asynkron/protoactor-go/cluster.(*Gossiper).StartGossiping.NewThrottle.func3.1",
		"github.com/asynkron/protoactor-go/cluster.NewGossipActor.NewThrottleWithLogger.func2.1",
	} {
		opts = append(opts, goleak.IgnoreAnyFunction(f))
	}
	return opts
}
