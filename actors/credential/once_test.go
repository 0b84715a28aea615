package credential_test

import (
	"errors"
	"testing"
	"time"

	"github.com/hearthfl/hearth/actors/credential"
)

func TestOnceUsesEachIDOnceAndStaysBounded(t *testing.T) {
	o := credential.NewOnce(2)
	now := time.Now()
	if err := o.Use("a", now.Add(time.Minute), now); err != nil {
		t.Fatal(err)
	}
	if err := o.Use("a", now.Add(time.Minute), now); !errors.Is(err, credential.ErrUsed) {
		t.Fatalf("a second use = %v, want ErrUsed", err)
	}
	if err := o.Use("b", now.Add(time.Second), now); err != nil {
		t.Fatal(err)
	}
	if err := o.Use("c", now.Add(time.Minute), now); !errors.Is(err, credential.ErrFull) {
		t.Fatalf("past the bound, none expired = %v, want ErrFull", err)
	}
	later := now.Add(2 * time.Second) // b has expired: its place is free
	if err := o.Use("c", later.Add(time.Minute), later); err != nil {
		t.Fatalf("after an expiry = %v", err)
	}
	if err := o.Use("a", later.Add(time.Minute), later); !errors.Is(err, credential.ErrUsed) {
		t.Fatalf("an unexpired id after a sweep = %v, want ErrUsed", err)
	}
}
