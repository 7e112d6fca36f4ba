package httpapi

import (
	"embed"
	"fmt"
	"net/http"

	"github.com/medx/medx/exchange"
)

// webFiles is the web portal: plain HTML, CSS and JavaScript over the /v1
// API, with no build step.
//
//go:embed web/index.html web/app.js web/app.css
var webFiles embed.FS

// uiPolicy keeps the portal to its own files: no inline script or style,
// no third-party origin, no framing.
const uiPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// handleUI serves one file of the portal. The portal is public; what it
// shows comes from the API with the token the user signs in with.
func handleUI(name, ctype string) handler {
	b, err := webFiles.ReadFile("web/" + name)
	if err != nil {
		panic(fmt.Sprintf("embedded web/%s: %v", name, err)) // a build defect, caught by every test
	}
	return func(w http.ResponseWriter, r *http.Request, _ exchange.Principal) error {
		h := w.Header()
		h.Set("Content-Type", ctype)
		h.Set("Content-Security-Policy", uiPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		w.Write(b)
		return nil
	}
}
