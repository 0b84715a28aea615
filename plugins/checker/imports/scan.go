package imports

import (
	"strings"
)

// imported is one module an import statement names.
type imported struct {
	// module is the dotted module name: for "import a.b as c" a.b; for
	// "from x import y" both x and, as a candidate submodule or
	// attribute, x.y (with name y); for a relative import, what follows
	// its dots ("" for "from . import y").
	module string
	// name is the name a from-import takes from module's parent ("" when
	// this is the statement's module itself).
	name  string
	level int // the relative import's dots; 0 for an absolute import
	line  int
	stmt  int // the import statement's index in the source
}

// reference is one use of a name outside an import statement.
type reference struct {
	name string
	line int
	call bool // the name is called: followed by "("
}

// scanned is what a source imports and the names it uses.
type scanned struct {
	imports []imported
	refs    []reference
}

// parser reads import statements out of a token stream.
type parser struct {
	toks  []token
	want  func(name string) bool // the names whose uses are recorded
	i     int
	stmts int // import statements read
	out   scanned
}

// scan finds every import statement in toks and every use of a name
// that want holds outside them: not an attribute (x.name), not a definition's name
// (def name, class name), not a keyword argument (f(name=...)). An
// attribute of builtins or __builtins__ counts as a use of the builtin
// itself. An import statement the parser cannot read is an error: the
// checker refuses what it cannot read.
func scan(toks []token, want func(name string) bool) (scanned, error) {
	p := &parser{toks: toks, want: want}
	start := true // a statement may start at the next token
	for p.i < len(toks) {
		t := toks[p.i]
		switch {
		case t.kind == tName && t.text == "import" && !t.inField:
			if err := p.importStmt(); err != nil {
				return scanned{}, err
			}
			start = true
			continue
		case t.kind == tName && t.text == "from" && start && !t.inField && t.depth == 0:
			if err := p.fromStmt(); err != nil {
				return scanned{}, err
			}
			start = true
			continue
		case t.kind == tName:
			p.reference()
		}
		start = t.kind == tNewline || !t.inField && t.depth == 0 && t.kind == tOp && (t.text == ";" || t.text == ":")
		p.i++
	}
	return p.out, nil
}

// reference records the name at p.i if it is a use of one.
func (p *parser) reference() {
	t := p.toks[p.i]
	if !p.want(t.text) {
		return
	}
	prev, prev2 := p.at(p.i-1), p.at(p.i-2)
	if prev.kind == tName && (prev.text == "def" || prev.text == "class") {
		return
	}
	if prev.kind == tOp && prev.text == "." && !(prev2.kind == tName && (prev2.text == "builtins" || prev2.text == "__builtins__")) {
		return
	}
	next := p.at(p.i + 1)
	if next.kind == tOp && next.text == "=" && t.depth > 0 && prev.kind == tOp && (prev.text == "(" || prev.text == ",") {
		return // a keyword argument or a parameter's default
	}
	p.out.refs = append(p.out.refs, reference{name: t.text, line: t.line, call: next.kind == tOp && next.text == "("})
}

// at is the token at i, or the zero token outside toks.
func (p *parser) at(i int) token {
	if i < 0 || i >= len(p.toks) {
		return token{}
	}
	return p.toks[i]
}

// fail is an import statement the parser cannot read.
func (p *parser) fail(what string) error {
	return &syntaxError{line: p.at(p.i).line, what: "cannot read an import: " + what}
}

// end says whether p.i ends a statement: a line's end, ';' or the end of
// the tokens.
func (p *parser) end() bool {
	t := p.at(p.i)
	return t.kind == 0 || t.kind == tNewline || t.kind == tOp && t.text == ";" && t.depth == 0
}

// isOp says whether p.i is the operator op.
func (p *parser) isOp(op string) bool {
	t := p.at(p.i)
	return t.kind == tOp && t.text == op
}

// isName says whether p.i is the name (or keyword) s.
func (p *parser) isName(s string) bool {
	t := p.at(p.i)
	return t.kind == tName && t.text == s
}

// dotted reads a dotted name (a.b.c) and returns it with its first
// token's line.
func (p *parser) dotted() (string, int, error) {
	t := p.at(p.i)
	if t.kind != tName || keywords[t.text] {
		return "", 0, p.fail("an import names no module")
	}
	parts := []string{t.text}
	p.i++
	for p.isOp(".") {
		p.i++
		n := p.at(p.i)
		if n.kind != tName || keywords[n.text] {
			return "", 0, p.fail("a module name ends with '.'")
		}
		parts = append(parts, n.text)
		p.i++
	}
	return strings.Join(parts, "."), t.line, nil
}

// alias reads an optional "as name".
func (p *parser) alias() error {
	if !p.isName("as") {
		return nil
	}
	p.i++
	if t := p.at(p.i); t.kind != tName || keywords[t.text] {
		return p.fail("'as' names nothing")
	}
	p.i++
	return nil
}

// importStmt reads "import a.b [as c], d ..." from its keyword.
func (p *parser) importStmt() error {
	if p.at(p.i).depth > 0 {
		return p.fail("'import' inside brackets")
	}
	p.i++
	p.stmts++
	for {
		mod, line, err := p.dotted()
		if err != nil {
			return err
		}
		p.out.imports = append(p.out.imports, imported{module: mod, line: line, stmt: p.stmts})
		if err := p.alias(); err != nil {
			return err
		}
		if p.end() {
			return nil
		}
		if !p.isOp(",") {
			return p.fail("an import statement goes on after its module")
		}
		p.i++
	}
}

// fromStmt reads "from [dots]x import y [as z], ..." (or "(...)" or "*")
// from its keyword.
func (p *parser) fromStmt() error {
	p.i++
	p.stmts++
	level := 0
	for p.isOp(".") || p.isOp("...") {
		level += len(p.at(p.i).text)
		p.i++
	}
	var mod string
	line := p.at(p.i).line
	if !p.isName("import") {
		var err error
		if mod, line, err = p.dotted(); err != nil {
			return err
		}
	}
	if level == 0 && mod == "" {
		return p.fail("'from' names no module")
	}
	if !p.isName("import") {
		return p.fail("'from' without 'import'")
	}
	p.i++
	p.out.imports = append(p.out.imports, imported{module: mod, level: level, line: line, stmt: p.stmts})
	if p.isOp("*") {
		p.i++
		if !p.end() {
			return p.fail("'import *' goes on")
		}
		return nil
	}
	paren := p.isOp("(")
	if paren {
		p.i++
	}
	for n := 0; ; n++ {
		t := p.at(p.i)
		if paren && n > 0 && p.isOp(")") {
			break // after a trailing comma
		}
		if t.kind != tName || keywords[t.text] {
			return p.fail("a from-import names nothing to import")
		}
		full := t.text
		if mod != "" {
			full = mod + "." + t.text
		}
		p.out.imports = append(p.out.imports, imported{module: full, name: t.text, level: level, line: t.line, stmt: p.stmts})
		p.i++
		if err := p.alias(); err != nil {
			return err
		}
		if !p.isOp(",") {
			break
		}
		p.i++
	}
	if paren {
		if !p.isOp(")") {
			return p.fail("a from-import's '(' is not closed")
		}
		p.i++
	}
	if !p.end() {
		return p.fail("a from-import goes on after its names")
	}
	return nil
}

// keywords are Python's hard keywords: never a name a script uses.
var keywords = map[string]bool{
	"False": true, "None": true, "True": true, "and": true, "as": true, "assert": true, "async": true,
	"await": true, "break": true, "class": true, "continue": true, "def": true, "del": true, "elif": true,
	"else": true, "except": true, "finally": true, "for": true, "from": true, "global": true, "if": true,
	"import": true, "in": true, "is": true, "lambda": true, "nonlocal": true, "not": true, "or": true,
	"pass": true, "raise": true, "return": true, "try": true, "while": true, "with": true, "yield": true,
}
