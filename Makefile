# Shortcuts; the README's two commands work without make.
.PHONY: run test bench fuzz proto ci

run:
	go run ./cmd/presenced --auth dev --graph examples/graph.json

test:
	go test -race -count=1 ./...

bench:
	go test -run X -bench . -benchmem -count 5 ./wire ./actors ./server

fuzz:
	go test -run X -fuzz FuzzDecode -fuzztime 60s ./wire

# Needs protoc and protoc-gen-go (go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12).
proto:
	go generate ./actors/actorpb

ci:
	bash .ci/run
