// Package actorpb holds the protobuf envelope that every actor message travels in.
package actorpb

//go:generate protoc --go_out=. --go_opt=paths=source_relative envelope.proto

// EnvelopeVersion is the envelope version this build writes and the newest it reads.
const EnvelopeVersion = 1
