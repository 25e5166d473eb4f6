# The two commands a newcomer needs are `make run` and `make test` (see README).
.PHONY: run test build bench fuzz

run:
	go run ./cmd/aonode run

test:
	go test -count=1 -timeout 20m ./...

build:
	CGO_ENABLED=0 go build -trimpath -o bin/aonode ./cmd/aonode

bench:
	go test -run '^$$' -bench . -benchmem ./...

FUZZTIME ?= 30s
fuzz:
	go test ./ans104 -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME)
	go test ./ans104 -run '^$$' -fuzz '^FuzzDecodeTags$$' -fuzztime $(FUZZTIME)
	go test ./ans104 -run '^$$' -fuzz '^FuzzParseBundle$$' -fuzztime $(FUZZTIME)
	go test ./ans104 -run '^$$' -fuzz '^FuzzVerifyPSS$$' -fuzztime $(FUZZTIME)
