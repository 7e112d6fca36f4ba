// Package httpapi is MedX's HTTP API: a versioned JSON API under /v1 over
// the exchange, bearer-JWT authentication with one role table (routes.go),
// RFC 9457 problem details, an OpenAPI 3.1 document at /openapi.json,
// server-sent notifications, /healthz and Prometheus /metrics.
//
// Handlers decode, call one exchange method and encode; the authenticated
// exchange.Principal is passed to them as an argument. The server never
// holds a sponsor's BGV secret key: query results leave it encrypted under
// the sponsor's own public key.
package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/medx/medx/exchange"
	"github.com/medx/medx/ledger"
)

// DefaultMaxBody is the default request body limit.
const DefaultMaxBody = 1 << 20

// Options are a Server's dependencies beyond the exchange.
type Options struct {
	// Auth verifies bearer tokens. Required.
	Auth *Authenticator
	// Keystore holds the keys of participants who sign through the server
	// (sponsors, boards, the operator, custodial patients). Participants
	// it does not hold get 403 no-custodial-key where the server would
	// have to sign; patients can always sign on their own device.
	Keystore *exchange.Keystore
	// Events subscribes to ledger notices, for /v1/events; nil disables it.
	Events func(ctx context.Context) <-chan exchange.Notice
	// Replay returns the ledger notices from block height from on (those
	// committed already, then live ones), for event streams resumed with
	// Last-Event-ID; nil resumes live only.
	Replay func(ctx context.Context, from uint64) <-chan exchange.Notice
	// Trail reads the ledger's audit trail, for token history and audit
	// export; nil answers those routes 501.
	Trail exchange.TrailFunc
	// SponsorKeys, if not nil, holds the BGV result keys of sponsors who
	// chose to have the exchange decrypt their results for them
	// (POST /v1/custodial-sponsor-key, then custodial-queries). Nil
	// refuses both: every sponsor decrypts on its own side.
	SponsorKeys *exchange.SponsorKeys
	// MaxBody limits request bodies (0 means DefaultMaxBody).
	MaxBody int64
	// Now is the clock for audit summaries (nil means time.Now).
	Now func() time.Time
	// Heartbeat is the interval of keep-alive comments on event streams
	// (0 means 15 s).
	Heartbeat time.Duration
	Log       *slog.Logger
}

// Server is the HTTP API over one exchange. It is an http.Handler.
type Server struct {
	ex      *exchange.Exchange
	o       Options
	log     *slog.Logger
	router  *mux.Router
	metrics *metrics
}

// New returns the API server over ex.
func New(ex *exchange.Exchange, o Options) *Server {
	if o.MaxBody <= 0 {
		o.MaxBody = DefaultMaxBody
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = 15 * time.Second
	}
	if o.Keystore == nil {
		o.Keystore = exchange.NewKeystore(nil, nil)
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{ex: ex, o: o, log: log, router: mux.NewRouter(), metrics: newMetrics()}
	for _, rt := range s.routes() {
		s.router.Handle(rt.pattern, s.wrap(rt)).Methods(rt.method)
	}
	s.router.NotFoundHandler = s.wrap(route{pattern: "unmatched", public: true, h: func(http.ResponseWriter, *http.Request, exchange.Principal) error {
		return errNoRoute
	}})
	s.router.MethodNotAllowedHandler = s.wrap(route{pattern: "unmatched", public: true, h: func(http.ResponseWriter, *http.Request, exchange.Principal) error {
		return errMethod
	}})
	return s
}

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.router.ServeHTTP(w, r) }

// handler serves one route for an authenticated principal (the zero
// Principal on public routes). An error goes to fail.
type handler func(w http.ResponseWriter, r *http.Request, p exchange.Principal) error

// route is one line of the route table.
type route struct {
	method  string
	pattern string
	public  bool          // no token needed
	roles   []ledger.Role // roles allowed, for non-public routes
	h       handler
}

// statusWriter records the status for logs and metrics.
type statusWriter struct {
	http.ResponseWriter
	status  int
	problem string
	route   string
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush and deadlines.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

type routeKey struct{}

// routeOf is the route pattern serving r, for logs.
func routeOf(r *http.Request) string {
	if p, ok := r.Context().Value(routeKey{}).(string); ok {
		return p
	}
	return "unmatched"
}

// wrap adds to a route's handler: body limit, authentication and the
// role check, metrics by route pattern, and one structured log line per
// request. Logs carry the pattern, never the path's ids, the token, or a
// patient's identity.
func (s *Server) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, route: rt.pattern}
		r = r.WithContext(context.WithValue(r.Context(), routeKey{}, rt.pattern))
		r.Body = http.MaxBytesReader(sw, r.Body, s.o.MaxBody)
		var p exchange.Principal
		err := func() error {
			if rt.public {
				return rt.h(sw, r, p)
			}
			var err error
			if p, err = s.o.Auth.Authenticate(r); err != nil {
				return err
			}
			if !slices.Contains(rt.roles, p.Role) {
				return fmt.Errorf("%s %s is open to %v, not to a %s: %w", rt.method, rt.pattern, rt.roles, p.Role, errRole)
			}
			return rt.h(sw, r, p)
		}()
		if err != nil {
			fail(sw, r, s.log, err)
		}
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		d := time.Since(start)
		s.metrics.observe(rt.method, rt.pattern, sw.status, d)
		attrs := []any{"method", r.Method, "route", rt.pattern, "status", sw.status, "duration_ms", float64(d.Microseconds()) / 1000}
		if p.Role != "" {
			attrs = append(attrs, "role", string(p.Role))
			if p.Role != ledger.RolePatient {
				attrs = append(attrs, "principal", p.ID)
			}
		}
		if sw.problem != "" {
			attrs = append(attrs, "problem", sw.problem)
		}
		s.log.InfoContext(r.Context(), "http request", attrs...)
	})
}

// metrics are request counts and latencies by route pattern, in the
// server's own registry (no global state).
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "medx_http_requests_total", Help: "HTTP requests by route pattern, method and status.",
		}, []string{"route", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "medx_http_request_duration_seconds", Help: "HTTP request latency by route pattern and method.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"route", "method"}),
	}
	m.reg.MustRegister(m.requests, m.latency, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) observe(method, pattern string, status int, d time.Duration) {
	m.requests.WithLabelValues(pattern, method, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(pattern, method).Observe(d.Seconds())
}

// Serve serves h on ln until ctx ends, then shuts down gracefully: it
// stops accepting, ends event streams, and waits up to grace for requests
// in flight. Timeouts bound slow clients; event streams lift the write
// timeout for themselves.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, grace time.Duration, log *slog.Logger) error {
	base, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      2 * time.Minute, // a query under HE takes seconds
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		BaseContext:       func(net.Listener) context.Context { return base },
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	cancel() // end event streams, which would hold Shutdown up
	sctx, stop := context.WithTimeout(context.Background(), grace)
	defer stop()
	err := srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	return nil
}
