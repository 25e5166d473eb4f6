# The two commands a newcomer needs are `make run` and `make test` (see README).
.PHONY: run test build build-wasmtime test-wasmtime bench fuzz

run:
	go run ./cmd/aonode run

test:
	go test -count=1 -timeout 20m ./...

build:
	CGO_ENABLED=0 go build -trimpath -o bin/aonode ./cmd/aonode

# The CU's second wasm engine, Wasmtime (cgo and a C compiler; the static
# library comes with the Go module): a binary with both engines.
build-wasmtime:
	CGO_ENABLED=1 go build -trimpath -tags wasmtime -o bin/aonode-wasmtime ./cmd/aonode

# The CU's tests on the Wasmtime build: every cu/wasm test (the differential
# ones against node included) runs on Wasmtime, TestEnginesAgree compares it
# with wazero message by message, and the CU's own tests run on it.
test-wasmtime:
	CGO_ENABLED=1 go vet -tags wasmtime ./cu/...
	CGO_ENABLED=1 go test -count=1 -timeout 20m -tags wasmtime ./cu/...

bench:
	go test -run '^$$' -bench . -benchmem ./...

# fuzz runs every fuzz target for FUZZTIME each. The targets are found in the
# source (every "func FuzzX(" in a _test.go file), so a new one is never
# missed; go test -fuzz takes one package and one target per run. All targets
# run even when one fails; the failures are listed at the end.
FUZZTIME ?= 30s
GO ?= go
fuzz:
	@failed=""; \
	for f in $$(find . -name node_modules -prune -o -name '*_test.go' -print | sort); do \
	  for t in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
	    echo "== $$(dirname $$f) $$t"; \
	    d=$$(dirname $$f); corpus=$$d/testdata/fuzz/$$t; \
	    before=$$(ls $$corpus 2>/dev/null | wc -l); \
	    if ! $(GO) test $$d -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME); then \
	      if [ "$$(ls $$corpus 2>/dev/null | wc -l)" -gt "$$before" ]; then \
	        failed="$$failed $$d.$$t"; \
	      else \
	        echo "== $$d $$t: the fuzzer failed without a failing input (its own deadline); once more"; \
	        $(GO) test $$d -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) || failed="$$failed $$d.$$t"; \
	      fi; \
	    fi; \
	  done; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz failures:$$failed" >&2; exit 1; fi
