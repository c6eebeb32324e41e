package users

import (
	"context"
	"errors"
	"strings"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/scaleplane/scaleplane/apps/account"
	usersv1 "github.com/scaleplane/scaleplane/apps/users/api"
)

// dummyHash is verified when the email is unknown, so an unknown email costs
// the same time as a wrong password and timing does not reveal accounts.
var dummyHash, _ = account.HashPassword("not a password", account.DefaultHashParams)

// Server implements usersv1.UsersServer.
type Server struct {
	usersv1.UnimplementedUsersServer
	store  *Store
	verify chan struct{}
}

// NewServer bounds password verification to concurrency parallel calls.
func NewServer(store *Store, concurrency int) *Server {
	return &Server{store: store, verify: make(chan struct{}, concurrency)}
}

func toProto(r Row) *usersv1.User {
	return &usersv1.User{Id: r.ID, Email: r.Email, Name: r.Name, CreatedAt: timestamppb.New(r.CreatedAt)}
}

func storeErr(err error) error {
	switch {
	case errors.Is(err, ErrNotFound):
		return status.Error(codes.NotFound, "user not found")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "database deadline exceeded")
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "cancelled")
	default:
		return status.Error(codes.Unavailable, "database unavailable")
	}
}

// GetUser reads a profile.
func (s *Server) GetUser(ctx context.Context, req *usersv1.GetUserRequest) (*usersv1.User, error) {
	if !account.ValidUserID(req.GetId()) {
		return nil, status.Error(codes.InvalidArgument, "id must be a lower-case UUID")
	}
	r, err := s.store.ByID(ctx, req.GetId())
	if err != nil {
		return nil, storeErr(err)
	}
	return toProto(r), nil
}

// CheckPassword verifies a password against the stored argon2id hash.
func (s *Server) CheckPassword(ctx context.Context, req *usersv1.CheckPasswordRequest) (*usersv1.CheckPasswordResponse, error) {
	email := account.NormalizeEmail(req.GetEmail())
	if email == "" || len(email) > 254 || len(req.GetPassword()) > 256 {
		return nil, status.Error(codes.InvalidArgument, "email and password are required and bounded")
	}
	r, err := s.store.ByEmail(ctx, email)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, storeErr(err)
	}
	hash := r.PasswordHash
	if err != nil {
		hash = dummyHash
	}
	select {
	case s.verify <- struct{}{}:
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	ok, verr := account.VerifyPassword(req.GetPassword(), hash)
	<-s.verify
	if verr != nil {
		return nil, status.Error(codes.Internal, "stored hash unreadable")
	}
	if !ok || err != nil {
		return &usersv1.CheckPasswordResponse{Ok: false}, nil
	}
	return &usersv1.CheckPasswordResponse{Ok: true, User: toProto(r)}, nil
}

// UpdateName changes the display name on the primary.
func (s *Server) UpdateName(ctx context.Context, req *usersv1.UpdateNameRequest) (*usersv1.User, error) {
	name := strings.TrimSpace(req.GetName())
	if !account.ValidUserID(req.GetId()) || name == "" || utf8.RuneCountInString(name) > 100 {
		return nil, status.Error(codes.InvalidArgument, "id must be a UUID and name 1-100 characters")
	}
	r, err := s.store.UpdateName(ctx, req.GetId(), name)
	if err != nil {
		return nil, storeErr(err)
	}
	return toProto(r), nil
}
