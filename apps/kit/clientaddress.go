package kit

import "context"

// clientAddressKey keys the client's address in a request's context.
type clientAddressKey struct{}

// WithClientAddress returns ctx carrying addr as the address of the client
// that sent the request. A service resolves it once, at the outermost
// handler (HTTPHandler with ResolveClient), from the connection and the
// headers its trusted proxies set; the
// server span (HTTPHandler), every log record written with the context and
// the service's own per-client decisions then read this one value, so they
// can never disagree about who the client was.
func WithClientAddress(ctx context.Context, addr string) context.Context {
	return context.WithValue(ctx, clientAddressKey{}, addr)
}

// ClientAddress is the address WithClientAddress put in ctx, or "" when
// nothing resolved one (a handler served without the resolving middleware,
// or a context that is not a request's).
func ClientAddress(ctx context.Context) string {
	addr, _ := ctx.Value(clientAddressKey{}).(string)
	return addr
}
