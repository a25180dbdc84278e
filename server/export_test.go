package server

// StackHas lets the external tests (package server_test) use the internal tests' stackHas.
var StackHas = stackHas
