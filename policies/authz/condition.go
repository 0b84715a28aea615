package authz

import (
	"strconv"
	"strings"
	"unicode"
)

// condKind is what a condition compares.
type condKind uint8

const (
	condAny           condKind = iota + 1 // any, all, true
	condNone                              // none, no, false
	condOrgSite                           // o:site
	condOrgSubmitter                      // o:submitter
	condOrg                               // o:<org>
	condNameSubmitter                     // n:submitter
	condName                              // n:<name>
)

// condition is one parsed condition of a control.
type condition struct {
	kind   condKind
	target string // the folded org or user name of condOrg and condName
	not    bool   // "not ...": the right is refused when the condition is met
}

// String is the condition in its folded, canonical spelling, as reasons
// show it: "any", "not o:site", "o:orga", "n:john".
func (c condition) String() string {
	var s string
	switch c.kind {
	case condAny:
		s = "any"
	case condNone:
		s = "none"
	case condOrgSite:
		s = "o:site"
	case condOrgSubmitter:
		s = "o:submitter"
	case condOrg:
		s = "o:" + shown(c.target)
	case condNameSubmitter:
		s = "n:submitter"
	case condName:
		s = "n:" + shown(c.target)
	default:
		s = "unset"
	}
	if c.not {
		return "not " + s
	}
	return s
}

// wantConditions lists the condition grammar for parse errors.
const wantConditions = `want any, all, none, no, o:site, o:submitter, o:<org>, n:submitter or n:<name>, each optionally after "not"`

// parseCondition parses one condition string as FLARE's
// _RoleRightConditions does: fold it; "not" and one more word make a
// blocking condition of that word; any and all, none and no; otherwise
// exactly one colon between a type (o or org, n or name) and a target,
// each folded. It also refuses, where FLARE would accept them, the forms
// it would misread: an empty target, and n:site (FLARE reserves "site"
// but would read n:site as the user named "site"). The error is the
// message for a ParseError.
func parseCondition(s string) (condition, string) {
	v := fold(s)
	var c condition
	if words := strings.Split(v, " "); len(words) == 2 && words[0] == "not" {
		c.not, v = true, words[1]
	}
	switch v {
	case "any", "all":
		c.kind = condAny
		return c, ""
	case "none", "no":
		c.kind = condNone
		return c, ""
	}
	typ, target, ok := strings.Cut(v, ":")
	if !ok || strings.Contains(target, ":") {
		return c, "unknown condition " + strconv.Quote(s) + " (" + wantConditions + ")"
	}
	typ, target = fold(typ), fold(target)
	switch typ {
	case "o", "org":
		switch target {
		case "":
			return c, "condition " + strconv.Quote(s) + " names no org"
		case "site":
			c.kind = condOrgSite
		case "submitter":
			c.kind = condOrgSubmitter
		default:
			c.kind, c.target = condOrg, target
		}
	case "n", "name":
		switch target {
		case "":
			return c, "condition " + strconv.Quote(s) + " names no user"
		case "site":
			return c, "condition " + strconv.Quote(s) + `: "site" is reserved, and n: takes a user name or submitter (the site's org is o:site)`
		case "submitter":
			c.kind = condNameSubmitter
		default:
			c.kind, c.target = condName, target
		}
	default:
		return c, "condition " + strconv.Quote(s) + ": unknown type " + strconv.Quote(typ) +
			" (want o or org, n or name; " + wantConditions + ")"
	}
	return c, ""
}

// control is what a role holds one right on (or every right, for a role
// given one control): FLARE's list of conditions, in the order written.
// FLARE splits it into the conditions that allow and the "not" conditions
// that block; Decide evaluates the second kind first.
type control struct {
	conds  []condition
	blocks int // how many of conds are "not" conditions
}

func (c *control) add(cond condition) {
	c.conds = append(c.conds, cond)
	if cond.not {
		c.blocks++
	}
}

// list is the control's conditions for a reason: "[o:site, not n:eve]".
func (c *control) list() string {
	parts := make([]string, len(c.conds))
	for i, x := range c.conds {
		parts[i] = x.String()
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// shown is policy or request text as a reason shows it: as it is when it
// is plain printable text, quoted Go style otherwise, so that a reason
// always stays one line and a name cannot pass for the words around it.
func shown(s string) string {
	if s == "" {
		return `""`
	}
	for _, r := range s {
		if !unicode.IsPrint(r) || strings.ContainsRune(` "\,;:()[]`, r) {
			return strconv.Quote(s)
		}
	}
	return s
}
