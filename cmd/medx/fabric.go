package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/medx/medx/exchange"
	"github.com/medx/medx/ledger"
	"github.com/medx/medx/ledger/fabric"
)

// ledgerFlag picks a site's ledger: "embedded" (the directory's bbolt
// file) or "fabric" (a gateway peer named by a config file).
func ledgerFlag(kind, fabricConfig string) (ledgerOpener, error) {
	switch kind {
	case "", "embedded":
		if fabricConfig != "" {
			return nil, fmt.Errorf("%w: --fabric-config needs --ledger fabric", errUsage)
		}
		return nil, nil
	case "fabric":
		if fabricConfig == "" {
			return nil, fmt.Errorf("%w: --ledger fabric needs --fabric-config FILE", errUsage)
		}
		cfg, err := fabric.ReadConfig(fabricConfig)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context, log *slog.Logger) (ledger.Backend, error) {
			return fabric.Open(cfg, fabric.Options{Logger: log})
		}, nil
	}
	return nil, fmt.Errorf("%w: --ledger %q: want embedded or fabric", errUsage, kind)
}

// siteNotices follows the site's ledger events as the exchange's notices.
func siteNotices(ctx context.Context, s *site, log *slog.Logger) <-chan exchange.Notice {
	if s.led != nil {
		return notices(ctx, s.led.Subscribe(ctx))
	}
	out := make(chan exchange.Notice)
	fl, ok := s.backend.(*fabric.Ledger)
	if !ok {
		close(out)
		return out
	}
	go func() {
		defer close(out)
		err := fl.Follow(ctx, func(ctx context.Context, ev fabric.Event) error {
			if ev.Event == nil {
				return nil
			}
			n := exchange.Notice{Height: ev.Block, Time: ev.Time, TxID: ev.TxID, Name: ev.Event.Name}
			if err := json.Unmarshal(ev.Event.Payload, &n.Payload); err != nil {
				return nil
			}
			select {
			case out <- n:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		if err != nil && ctx.Err() == nil {
			log.Error("fabric events", "err", err)
		}
	}()
	return out
}
