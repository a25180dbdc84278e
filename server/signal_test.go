package server

import "testing"

func TestSignalWaitBeforeAndAfterFire(t *testing.T) {
	var early signal
	c := early.wait()
	select {
	case <-c:
		t.Fatal("wait's channel closed before fire")
	default:
	}
	early.fire()
	early.fire() // a second fire must not close twice
	<-c

	var late signal
	late.fire()
	<-late.wait() // made after fire: already closed
	if late.ch == nil {
		t.Fatal("wait made no channel")
	}

	var never signal
	never.fire()
	if never.ch != nil {
		t.Fatal("fire made a channel nobody waits on")
	}
}
