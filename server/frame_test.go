package server_test

import (
	"io"

	"github.com/gobwas/ws"
)

func writeMasked(w io.Writer, payload []byte) error {
	f := ws.NewTextFrame(append([]byte(nil), payload...))
	return ws.WriteFrame(w, ws.MaskFrameInPlace(f))
}

// writeFragment writes one masked frame of a fragmented message: op is OpText for the first,
// OpContinuation for the rest; fin marks the last.
func writeFragment(w io.Writer, op ws.OpCode, fin bool, payload []byte) error {
	f := ws.NewFrame(op, fin, append([]byte(nil), payload...))
	return ws.WriteFrame(w, ws.MaskFrameInPlace(f))
}
