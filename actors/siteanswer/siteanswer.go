// Package siteanswer is what a site answers an admin through the server:
// the answer to a site command, signed by the site and sealed to the
// console's key for that command, and a pre-flight's answer, signed by the
// site. The server relays both and can neither read the first nor forge
// either: the console checks each against the project root and the
// command or job it asked about.
package siteanswer

import (
	"crypto/ecdh"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/hearthfl/hearth/actors/sealing"
	"github.com/hearthfl/hearth/bus/envelope"
	"github.com/hearthfl/hearth/bus/pki"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// The signing purposes; a new format gets a new one.
const (
	commandPurpose   = "hearth.site-answer.v1"
	preflightPurpose = "hearth.preflight-answer.v1"
)

// Bounds on what the console opens.
const (
	MaxAnswer      = 1 << 20 // a site command's result: its lines are bounded below this
	maxCertificate = 16 << 10
)

func message(hash, body []byte) []byte { return append(append([]byte(nil), hash...), body...) }

// SealCommandAnswer signs res for the command whose signed bytes hash to
// commandHash and seals it to replyKey (the command's reply_key).
func SealCommandAnswer(res *hearthv1.SiteCommandResult, signer sealing.Signer, commandHash, replyKey []byte) (*hearthv1.SealedSiteAnswer, error) {
	key, err := ecdh.X25519().NewPublicKey(replyKey)
	if err != nil {
		return nil, fmt.Errorf("the command's reply key: %w", err)
	}
	b, err := proto.Marshal(res)
	if err != nil {
		return nil, err
	}
	sig, err := signer.SignFor(commandPurpose, message(commandHash, b))
	if err != nil {
		return nil, err
	}
	signed, err := proto.Marshal(&hearthv1.SignedSiteAnswer{Result: b, Signature: sig, SiteCert: signer.Certificate().Raw})
	if err != nil {
		return nil, err
	}
	sb, err := envelope.Seal([]byte(commandPurpose), signed, key)
	if err != nil {
		return nil, err
	}
	return &hearthv1.SealedSiteAnswer{Site: signer.Identity().Name, Sealed: sb}, nil
}

// OpenCommandAnswer opens a site's answer with key (the private half of the
// command's reply key) and checks that site signed it, for the command
// whose signed bytes hash to commandHash, with a certificate trust accepts
// at now.
func OpenCommandAnswer(sa *hearthv1.SealedSiteAnswer, key *ecdh.PrivateKey, trust *pki.Trust, site string, commandHash []byte, now time.Time) (*hearthv1.SiteCommandResult, error) {
	if sa == nil || sa.Sealed == nil {
		return nil, fmt.Errorf("%s answered nothing sealed", site)
	}
	if n := proto.Size(sa.Sealed); n > MaxAnswer+maxCertificate+1024 {
		return nil, fmt.Errorf("%s's answer is %d bytes", site, n)
	}
	b, err := envelope.Unseal([]byte(commandPurpose), sa.Sealed, key)
	if err != nil {
		return nil, fmt.Errorf("%s's answer does not open: %w", site, err)
	}
	var signed hearthv1.SignedSiteAnswer
	if err := proto.Unmarshal(b, &signed); err != nil {
		return nil, fmt.Errorf("%s's answer: %w", site, err)
	}
	if err := sealing.VerifySigned(signed.SiteCert, signed.Signature, commandPurpose, message(commandHash, signed.Result), trust, site, now); err != nil {
		return nil, fmt.Errorf("%s's answer: %w", site, err)
	}
	var res hearthv1.SiteCommandResult
	if err := proto.Unmarshal(signed.Result, &res); err != nil {
		return nil, fmt.Errorf("%s's answer: %w", site, err)
	}
	if res.Site != site {
		return nil, fmt.Errorf("%s's answer names %q", site, envelope.Clip(res.Site, 64))
	}
	return &res, nil
}

// SignPreflight signs a site's pre-flight answer for the job whose
// signature covers what hashes to jobHash (job.Hash).
func SignPreflight(a *hearthv1.PreflightAnswer, signer sealing.Signer, jobHash []byte) (*hearthv1.SignedPreflightAnswer, error) {
	b, err := proto.Marshal(a)
	if err != nil {
		return nil, err
	}
	sig, err := signer.SignFor(preflightPurpose, message(jobHash, b))
	if err != nil {
		return nil, err
	}
	return &hearthv1.SignedPreflightAnswer{Answer: b, Signature: sig, SiteCert: signer.Certificate().Raw}, nil
}

// VerifyPreflight checks a signed pre-flight answer for the job hashing to
// jobHash and returns it, with the site that signed it.
func VerifyPreflight(sa *hearthv1.SignedPreflightAnswer, trust *pki.Trust, jobHash []byte, now time.Time) (*hearthv1.PreflightAnswer, error) {
	if sa == nil || len(sa.Answer) > 64<<10 {
		return nil, fmt.Errorf("a pre-flight answer of %d bytes", len(sa.GetAnswer()))
	}
	var a hearthv1.PreflightAnswer
	if err := proto.Unmarshal(sa.Answer, &a); err != nil {
		return nil, fmt.Errorf("a pre-flight answer: %w", err)
	}
	if err := sealing.VerifySigned(sa.SiteCert, sa.Signature, preflightPurpose, message(jobHash, sa.Answer), trust, a.Site, now); err != nil {
		return nil, fmt.Errorf("%s's pre-flight answer: %w", envelope.Clip(a.Site, 64), err)
	}
	return &a, nil
}
