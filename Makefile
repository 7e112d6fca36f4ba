# make test: everything the tests need, installed and run, on a fresh machine.
GO ?= go
PKGS := ./...

.PHONY: test vet fmt-check build demo bench

test: fmt-check vet
	$(GO) test -count=1 -timeout 30m $(PKGS)

vet:
	$(GO) vet $(PKGS)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

build:
	$(GO) build -o bin/medx ./cmd/medx

demo:
	$(GO) run ./cmd/medx demo
