package wire

import "fmt"

// Close codes the server uses. Standard codes come from RFC 6455 §7.4.1; the 4000–4999 ones are
// presenced's own. Each says what a client should do next (see Codes).
const (
	CloseNormal          = 1000 // after bye: done, do not reconnect this window
	CloseGoingAway       = 1001 // server shutting down: reconnect and resume
	CloseProtocolError   = 1002 // WebSocket protocol violation (unmasked frame, stray continuation)
	CloseUnsupportedData = 1003 // binary frame: fix the client
	CloseInvalidPayload  = 1007 // undecodable or invalid frame: fix the client
	ClosePolicy          = 1008 // no hello, frame before hello, second hello, sustained flooding
	CloseTooBig          = 1009 // frame over MaxFrameBytes
	CloseInternal        = 1011 // server fault: reconnect and resume
	CloseServiceRestart  = 1012 // drain: resume on another node

	CloseUnauthorized = 4001 // bad token: do not reconnect with the same token
	CloseResumeFailed = 4002 // resume token invalid: hello again without resume
	CloseReplaced     = 4003 // another socket took this window over: do not reconnect
	CloseSlowConsumer = 4008 // the client read too slowly: reconnect and resume
)

// Error codes carried by the error frame.
const (
	ErrBadFrame       = "bad_frame"
	ErrBinary         = "binary_unsupported"
	ErrTooBig         = "frame_too_big"
	ErrHelloTimeout   = "hello_timeout"
	ErrFrameTimeout   = "frame_timeout"
	ErrHelloExpected  = "hello_expected"
	ErrDuplicateHello = "duplicate_hello"
	ErrUnauthorized   = "unauthorized"
	ErrResumeFailed   = "resume_failed"
	ErrReplaced       = "replaced"
	ErrRateLimited    = "rate_limited"
	ErrSlowConsumer   = "slow_consumer"
	ErrServerRestart  = "server_restart"
	ErrInternal       = "internal"
)

// Advice tells a client what to do after a close.
type Advice string

const (
	AdviceStop      Advice = "stop"      // do not reconnect (fix the client or the token first)
	AdviceResume    Advice = "resume"    // reconnect and hello with the resume token
	AdviceHello     Advice = "hello"     // reconnect and hello without resume
	AdviceReconnect Advice = "reconnect" // reconnect; a resume token may be used
)

// CodeInfo documents one close code.
type CodeInfo struct {
	Close  int
	Error  string // the error frame's code sent before the close, "" if none
	Advice Advice
	Doc    string
}

// Codes is the one table of close codes: docs/protocol.md lists every row (a test checks).
var Codes = []CodeInfo{
	{CloseNormal, "", AdviceStop, "the client said bye; the window is gone"},
	{CloseGoingAway, "", AdviceResume, "the server is going away; resume elsewhere"},
	{CloseProtocolError, ErrBadFrame, AdviceStop, "WebSocket protocol violation (unmasked frame, stray continuation)"},
	{CloseUnsupportedData, ErrBinary, AdviceStop, "binary frames are not part of the protocol"},
	{CloseInvalidPayload, ErrBadFrame, AdviceStop, "a frame did not decode or failed validation; the error names the problem"},
	{ClosePolicy, ErrHelloExpected, AdviceStop, "no hello within 10 s, a frame before hello, a second hello, or sustained flooding"},
	{CloseTooBig, ErrTooBig, AdviceStop, "a frame was larger than 4 KiB"},
	{CloseInternal, ErrInternal, AdviceResume, "the server failed; reconnect and resume"},
	{CloseServiceRestart, ErrServerRestart, AdviceResume, "the node drains; resume on another node"},
	{CloseUnauthorized, ErrUnauthorized, AdviceStop, "the token was not accepted; get a new one"},
	{CloseResumeFailed, ErrResumeFailed, AdviceHello, "the resume token is unknown, used, expired or another user's"},
	{CloseReplaced, ErrReplaced, AdviceStop, "another socket took this window over"},
	{CloseSlowConsumer, ErrSlowConsumer, AdviceResume, "the client did not read fast enough; its queue overflowed"},
}

// Error is a protocol error: the server sends it as an error frame and, when Close is non-zero,
// closes the socket with that code.
type Error struct {
	Code  string
	Msg   string
	Close int
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Msg) }

// BadFrame builds the error for an invalid frame.
func BadFrame(format string, args ...any) *Error {
	return &Error{Code: ErrBadFrame, Msg: fmt.Sprintf(format, args...), Close: CloseInvalidPayload}
}
