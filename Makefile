# make test: everything the tests need, installed and run, on a fresh machine.
GO ?= go
PKGS := ./...

.PHONY: test vet fmt-check build demo bench chromium

# The browser tests (exchange/httpapi TestBrowser) drive Debian's chromium;
# screenshots go to artifacts/browser.
test: fmt-check vet chromium
	$(GO) test -count=1 -timeout 30m $(PKGS)

# chromium installs Debian's chromium when it is missing (sudo only when
# not root). Nothing is downloaded at test time.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
		SUDO=; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
		$$SUDO apt-get update && $$SUDO apt-get install -y chromium; }

vet:
	$(GO) vet $(PKGS)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

build:
	$(GO) build -o bin/medx ./cmd/medx

demo:
	$(GO) run ./cmd/medx demo
