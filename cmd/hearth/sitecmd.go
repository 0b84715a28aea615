package main

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/hearthfl/hearth/actors/credential"
	"github.com/hearthfl/hearth/actors/siteadmin"
	"github.com/hearthfl/hearth/actors/siteanswer"
	"github.com/hearthfl/hearth/bus/kit"
	"github.com/hearthfl/hearth/plugins/authn"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// runSiteCommand runs `admin site VERB SITE [--lines N]`: a command the
// site decides and answers itself, signed by this admin and carrying its
// credential for the site, if it is logged in there.
func runSiteCommand(ctx context.Context, c *cli, k *kit.Kit, a *console, asJSON bool, args []string) error {
	if len(args) < 2 {
		return errUsageMsg("site takes a command and a site: site status|resources|logs|audit|shutdown SITE [--lines N]")
	}
	cmd, site := authn.Command("site."+args[0]), args[1]
	if siteadmin.Right(cmd) == "" {
		return errUsageMsg(fmt.Sprintf("unknown site command %q (want status, resources, logs, audit or shutdown)", args[0]))
	}
	lines := int64(0)
	if rest := args[2:]; len(rest) > 0 {
		if len(rest) != 2 || rest[0] != "--lines" {
			return errUsageMsg("after the site, only --lines N")
		}
		n, err := strconv.ParseInt(rest[1], 10, 64)
		if err != nil || n < 1 || n > siteadmin.MaxLines {
			return errUsageMsg(fmt.Sprintf("--lines: want 1 to %d", siteadmin.MaxLines))
		}
		lines = n
	}
	now := time.Now()
	reply, err := ecdh.X25519().GenerateKey(rand.Reader) // the site seals its answer to it: the server relays it unread
	if err != nil {
		return err
	}
	signed, err := siteadmin.Sign(site, cmd, lines, reply.PublicKey(), k.Cert, k.Key, now, siteadmin.MaxLifetime)
	if err != nil {
		return err
	}
	creds, err := sealFor(ctx, c, c.stderr, k, a.Client, a.Trust, []string{site}, func(string) credential.Binding {
		return credential.Binding{Site: site, Command: cmd, Requester: k.Config.Name, JobHash: siteadmin.Hash(signed)}
	})
	if err != nil {
		return err
	}
	if len(creds) == 1 {
		signed.Credential = creds[0]
	}
	var sealed hearthv1.SealedSiteAnswer
	if err := a.Call(ctx, signed, &sealed); err != nil {
		return err
	}
	res, err := siteanswer.OpenCommandAnswer(&sealed, reply, a.Trust, site, siteadmin.Hash(signed), time.Now())
	if err != nil {
		return err
	}
	return printResult(c.stdout, asJSON, res, func(w io.Writer) { printSiteResult(w, res) })
}

func printSiteResult(w io.Writer, r *hearthv1.SiteCommandResult) {
	for _, k := range slices.Sorted(maps.Keys(r.Facts)) {
		fmt.Fprintf(w, "%s: %s\n", termText(k), termText(r.Facts[k]))
	}
	if len(r.Jobs) > 0 {
		fmt.Fprintln(w, "jobs:")
		for _, j := range r.Jobs {
			fmt.Fprintln(w, " ", termText(j))
		}
	}
	for _, l := range r.Lines {
		fmt.Fprintln(w, termText(l))
	}
	if authn.Command(r.Command) == authn.CommandSiteShutdown {
		fmt.Fprintln(w, termText(r.Site), "is shutting down")
	}
}
