package users

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"

	"github.com/scaleplane/scaleplane/apps/account"
	"github.com/scaleplane/scaleplane/apps/kit"
	usersv1 "github.com/scaleplane/scaleplane/apps/users/api"
)

// Service is a started users service: listeners bound, pools open.
type Service struct {
	cfg      Config
	tel      *kit.Telemetry
	health   *kit.Health
	rw, ro   *pgxpool.Pool
	grpcLn   net.Listener
	adminLn  net.Listener
	grpcSrv  *grpc.Server
	adminSrv *http.Server
	hs       *health.Server
}

// New opens the pools, migrates, and binds the listeners (so a port ":0"
// is resolved before Run), without serving yet.
func New(ctx context.Context, cfg Config, tel *kit.Telemetry) (_ *Service, err error) {
	s := &Service{cfg: cfg, tel: tel, health: kit.NewHealth(2 * time.Second)}
	defer func() {
		if err != nil {
			s.closeAll()
		}
	}()
	if s.rw, err = openPool(ctx, cfg.DatabaseRW, cfg.MaxConns); err != nil {
		return nil, fmt.Errorf("DATABASE_URL_RW: %w", err)
	}
	s.ro = s.rw
	if cfg.DatabaseRO != cfg.DatabaseRW {
		if s.ro, err = openPool(ctx, cfg.DatabaseRO, cfg.MaxConns); err != nil {
			return nil, fmt.Errorf("DATABASE_URL_RO: %w", err)
		}
	}
	if cfg.Migrate {
		if err = account.Migrate(ctx, s.rw); err != nil {
			return nil, fmt.Errorf("migrate: %w", err)
		}
	}
	s.health.AddCheck("postgres-primary", func(ctx context.Context) error { return s.rw.Ping(ctx) })
	s.health.AddCheck("postgres-replica", func(ctx context.Context) error { return s.ro.Ping(ctx) })

	s.hs = health.NewServer()
	s.grpcSrv = grpc.NewServer(
		grpc.StatsHandler(tel.GRPCServerHandler()),
		grpc.StatsHandler(tel.Metrics.GRPCConns()),
		grpc.ChainUnaryInterceptor(tel.Metrics.GRPCUnary()),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionAge:      cfg.MaxConnectionAge,
			MaxConnectionAgeGrace: cfg.ShutdownTimeout,
		}),
	)
	usersv1.RegisterUsersServer(s.grpcSrv, NewServer(NewStore(s.rw, s.ro, cfg.ReadYourWritesWindow), cfg.VerifyConcurrency))
	healthpb.RegisterHealthServer(s.grpcSrv, s.hs)

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", tel.Metrics.Handler())
	mux.Handle("GET /healthz", s.health.LiveHandler())
	mux.Handle("GET /readyz", s.health.ReadyHandler())
	s.adminSrv = kit.NewHTTPServer(mux, kit.HTTPTimeouts{ReadHeader: 5 * time.Second, Read: 10 * time.Second,
		Write: 30 * time.Second, Idle: time.Minute}, tel.Metrics, tel.Logger)

	if s.grpcLn, err = net.Listen("tcp", cfg.GRPCAddr); err != nil {
		return nil, fmt.Errorf("GRPC_ADDR: %w", err)
	}
	if s.adminLn, err = net.Listen("tcp", cfg.AdminAddr); err != nil {
		return nil, fmt.Errorf("ADMIN_ADDR: %w", err)
	}
	return s, nil
}

func openPool(ctx context.Context, url string, maxConns int) (*pgxpool.Pool, error) {
	pc, err := account.PoolConfig(url, int32(maxConns))
	if err != nil {
		return nil, err
	}
	return pgxpool.NewWithConfig(ctx, pc)
}

func (s *Service) closeAll() {
	if s.ro != nil && s.ro != s.rw {
		s.ro.Close()
	}
	if s.rw != nil {
		s.rw.Close()
	}
	for _, ln := range []net.Listener{s.grpcLn, s.adminLn} {
		if ln != nil {
			_ = ln.Close()
		}
	}
}

// GRPCAddr is the bound gRPC address.
func (s *Service) GRPCAddr() string { return s.grpcLn.Addr().String() }

// AdminAddr is the bound address of /metrics, /healthz and /readyz.
func (s *Service) AdminAddr() string { return s.adminLn.Addr().String() }

// Run serves until ctx ends, then stops gracefully: NOT_SERVING first,
// GracefulStop (in-flight calls finish) bounded by the shutdown deadline,
// pools closed, telemetry flushed.
func (s *Service) Run(ctx context.Context) error {
	hctx, stopHealth := context.WithCancel(context.WithoutCancel(ctx))
	go s.health.SyncGRPC(hctx, s.hs, time.Second, usersv1.Users_ServiceDesc.ServiceName)
	go func() { <-ctx.Done(); s.hs.Shutdown() }() // NOT_SERVING at once, before the drain delay

	grpcUnit := kit.Unit{
		Name: "grpc",
		Run:  func() error { return s.grpcSrv.Serve(s.grpcLn) },
		Stop: func(ctx context.Context) error {
			done := make(chan struct{})
			go func() { s.grpcSrv.GracefulStop(); close(done) }()
			select {
			case <-done:
				return nil
			case <-ctx.Done():
				s.grpcSrv.Stop()
				return fmt.Errorf("in-flight calls cut at the deadline: %w", ctx.Err())
			}
		},
	}
	lc := kit.Lifecycle{Log: s.tel.Logger, Health: s.health, DrainDelay: s.cfg.DrainDelay, ShutdownTimeout: s.cfg.ShutdownTimeout}
	s.tel.LogStart(ctx, "grpc_addr", s.GRPCAddr(), "admin_addr", s.AdminAddr())
	return lc.Run(ctx, []kit.Unit{grpcUnit, kit.HTTPUnit("admin", s.adminSrv, s.adminLn)}, []kit.Closer{
		{Name: "telemetry", Close: s.tel.Shutdown},
		{Name: "health", Close: func(context.Context) error { stopHealth(); return nil }},
		{Name: "postgres", Close: func(context.Context) error { s.closeAll(); return nil }},
	})
}
