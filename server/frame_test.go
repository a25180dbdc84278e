package server_test

import (
	"io"

	"github.com/gobwas/ws"
)

func writeMasked(w io.Writer, payload []byte) error {
	f := ws.NewTextFrame(append([]byte(nil), payload...))
	return ws.WriteFrame(w, ws.MaskFrameInPlace(f))
}
