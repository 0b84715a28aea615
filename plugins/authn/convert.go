package authn

import (
	"errors"
	"fmt"

	authnv1 "github.com/hearthfl/hearth/schemas/hearth/plugin/authn/v1"
)

// commandToWire is c's wire value; a command is known exactly when it
// has one.
func commandToWire(c Command) (authnv1.Command, bool) {
	switch c {
	case CommandSubmit:
		return authnv1.Command_COMMAND_SUBMIT, true
	case CommandAbort:
		return authnv1.Command_COMMAND_ABORT, true
	case CommandDownload:
		return authnv1.Command_COMMAND_DOWNLOAD, true
	case CommandStatus:
		return authnv1.Command_COMMAND_STATUS, true
	case CommandPreflight:
		return authnv1.Command_COMMAND_PREFLIGHT, true
	case CommandSiteStatus:
		return authnv1.Command_COMMAND_SITE_STATUS, true
	case CommandSiteResources:
		return authnv1.Command_COMMAND_SITE_RESOURCES, true
	case CommandSiteLogs:
		return authnv1.Command_COMMAND_SITE_LOGS, true
	case CommandSiteAudit:
		return authnv1.Command_COMMAND_SITE_AUDIT, true
	case CommandSiteShutdown:
		return authnv1.Command_COMMAND_SITE_SHUTDOWN, true
	}
	return authnv1.Command_COMMAND_UNSPECIFIED, false
}

// commandFromWire is the command w stands for.
func commandFromWire(w authnv1.Command) (Command, bool) {
	switch w {
	case authnv1.Command_COMMAND_SUBMIT:
		return CommandSubmit, true
	case authnv1.Command_COMMAND_ABORT:
		return CommandAbort, true
	case authnv1.Command_COMMAND_DOWNLOAD:
		return CommandDownload, true
	case authnv1.Command_COMMAND_STATUS:
		return CommandStatus, true
	case authnv1.Command_COMMAND_PREFLIGHT:
		return CommandPreflight, true
	case authnv1.Command_COMMAND_SITE_STATUS:
		return CommandSiteStatus, true
	case authnv1.Command_COMMAND_SITE_RESOURCES:
		return CommandSiteResources, true
	case authnv1.Command_COMMAND_SITE_LOGS:
		return CommandSiteLogs, true
	case authnv1.Command_COMMAND_SITE_AUDIT:
		return CommandSiteAudit, true
	case authnv1.Command_COMMAND_SITE_SHUTDOWN:
		return CommandSiteShutdown, true
	}
	return "", false
}

// Known reports whether c is one of the Command constants.
func (c Command) Known() bool {
	_, ok := commandToWire(c)
	return ok
}

// credentialToWire is a credential kind's wire value.
func credentialToWire(kind string) (authnv1.CredentialKind, bool) {
	switch kind {
	case CredentialPassword:
		return authnv1.CredentialKind_CREDENTIAL_KIND_PASSWORD, true
	case CredentialToken:
		return authnv1.CredentialKind_CREDENTIAL_KIND_TOKEN, true
	}
	return authnv1.CredentialKind_CREDENTIAL_KIND_UNSPECIFIED, false
}

// credentialFromWire is the credential kind w stands for.
func credentialFromWire(w authnv1.CredentialKind) (string, bool) {
	switch w {
	case authnv1.CredentialKind_CREDENTIAL_KIND_PASSWORD:
		return CredentialPassword, true
	case authnv1.CredentialKind_CREDENTIAL_KIND_TOKEN:
		return CredentialToken, true
	}
	return "", false
}

// Bounds on a decision a plugin answers; a decision beyond them is not
// accepted (the site could not decide).
const (
	maxGroups    = 1024
	maxFieldSize = 1024 // bytes of the subject, a group, the role or the reason
)

// errConvert is a value that has no place on the wire or in the Go types.
var errConvert = errors.New("authn: conversion")

// requestToProto is r on the wire; an unknown command or credential kind
// is refused.
func requestToProto(r Request) (*authnv1.AuthenticateRequest, error) {
	cmd, ok := commandToWire(r.Command)
	if !ok {
		return nil, fmt.Errorf("%w: unknown command %q", errConvert, r.Command)
	}
	m := &authnv1.AuthenticateRequest{
		Site:    r.Site,
		Command: cmd,
		Requester: &authnv1.Requester{
			Name: r.Requester.Name,
			Org:  r.Requester.Org,
			Role: r.Requester.Role,
		},
		JobId:    r.JobID,
		Manifest: r.Manifest,
	}
	if c := r.Credential; c != nil {
		kind, ok := credentialToWire(c.Kind)
		if !ok {
			return nil, fmt.Errorf("%w: unknown credential kind %q", errConvert, c.Kind)
		}
		m.Credential = &authnv1.Credential{Kind: kind, User: c.User, Secret: c.Secret}
	}
	return m, nil
}

// requestFromProto is the request the plugin side decides; an unknown
// command or credential kind is refused.
func requestFromProto(m *authnv1.AuthenticateRequest) (Request, error) {
	cmd, ok := commandFromWire(m.GetCommand())
	if !ok {
		return Request{}, fmt.Errorf("%w: unknown command %v", errConvert, m.GetCommand())
	}
	r := Request{
		Site:    m.GetSite(),
		Command: cmd,
		Requester: Requester{
			Name: m.GetRequester().GetName(),
			Org:  m.GetRequester().GetOrg(),
			Role: m.GetRequester().GetRole(),
		},
		JobID:    m.GetJobId(),
		Manifest: m.GetManifest(),
	}
	if c := m.GetCredential(); c != nil {
		kind, ok := credentialFromWire(c.GetKind())
		if !ok {
			return Request{}, fmt.Errorf("%w: unknown credential kind %v", errConvert, c.GetKind())
		}
		r.Credential = &Credential{Kind: kind, User: c.GetUser(), Secret: c.GetSecret()}
	}
	return r, nil
}

// decisionToProto is d on the wire.
func decisionToProto(d Decision) *authnv1.Decision {
	return &authnv1.Decision{
		Authenticated: d.Authenticated,
		Subject:       d.Subject,
		Groups:        d.Groups,
		Role:          d.Role,
		Reason:        d.Reason,
	}
}

// decisionFromProto is the decision a plugin answered, refused beyond the
// bounds above; a missing decision is refused too.
func decisionFromProto(m *authnv1.Decision) (Decision, error) {
	if m == nil {
		return Decision{}, fmt.Errorf("%w: the plugin answered no decision", errConvert)
	}
	if n := len(m.GetGroups()); n > maxGroups {
		return Decision{}, fmt.Errorf("%w: the plugin answered %d groups (at most %d)", errConvert, n, maxGroups)
	}
	fields := append([]string{m.GetSubject(), m.GetRole(), m.GetReason()}, m.GetGroups()...)
	for _, f := range fields {
		if len(f) > maxFieldSize {
			return Decision{}, fmt.Errorf("%w: the plugin answered a value of %d bytes (at most %d)", errConvert, len(f), maxFieldSize)
		}
	}
	return Decision{
		Authenticated: m.GetAuthenticated(),
		Subject:       m.GetSubject(),
		Groups:        m.GetGroups(),
		Role:          m.GetRole(),
		Reason:        m.GetReason(),
	}, nil
}
