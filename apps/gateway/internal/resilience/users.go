package resilience

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	usersv1 "github.com/scaleplane/scaleplane/apps/users/api"
)

// ErrNotFound is the users service's NOT_FOUND.
var ErrNotFound = errors.New("user not found")

// Users calls the users service under a Policy.
type Users struct {
	API    usersv1.UsersClient
	Policy *Policy
}

// GRPCRetryable is true for codes a retry may cure.
func GRPCRetryable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted:
		return true
	}
	return false
}

// GRPCHealthy is true for codes that show the service is working.
func GRPCHealthy(err error) bool {
	switch status.Code(err) {
	case codes.NotFound, codes.InvalidArgument, codes.AlreadyExists, codes.PermissionDenied, codes.Unauthenticated:
		return true
	}
	return false
}

// GetUser returns a profile, ErrNotFound, or ErrUnavailable.
func (u *Users) GetUser(ctx context.Context, id string) (*usersv1.User, error) {
	v, err := Do(ctx, u.Policy, func(ctx context.Context) (*usersv1.User, error) {
		return u.API.GetUser(ctx, &usersv1.GetUserRequest{Id: id})
	})
	if status.Code(err) == codes.NotFound {
		return nil, ErrNotFound
	}
	return v, err
}

// CheckPassword returns the user when the password matches, nil when not.
func (u *Users) CheckPassword(ctx context.Context, email, password string) (*usersv1.User, error) {
	v, err := Do(ctx, u.Policy, func(ctx context.Context) (*usersv1.CheckPasswordResponse, error) {
		return u.API.CheckPassword(ctx, &usersv1.CheckPasswordRequest{Email: email, Password: password})
	})
	if err != nil {
		return nil, err
	}
	if !v.GetOk() {
		return nil, nil
	}
	return v.GetUser(), nil
}
