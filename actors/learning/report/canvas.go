package report

import (
	"image"
	"image/color"
	"image/draw"
	"math"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// face is the only font: fixed 7x13 ASCII glyphs with an 11-pixel ascent.
var face = basicfont.Face7x13

const (
	lineHeight = 13 // face.Height: pixels from one text line to the next
	ascent     = 11 // face.Ascent: baseline offset from a text line's top
)

// canvas draws aliased primitives onto an RGBA image. Every pixel write goes
// through set, which drops pixels outside clip, so no input can draw out of
// bounds.
type canvas struct {
	img  *image.RGBA
	clip image.Rectangle
}

func newCanvas(width, height int, bg color.RGBA) *canvas {
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	draw.Draw(img, img.Bounds(), image.NewUniform(bg), image.Point{}, draw.Src)
	return &canvas{img: img, clip: img.Bounds()}
}

func (c *canvas) set(x, y int, col color.RGBA) {
	if (image.Point{x, y}).In(c.clip) {
		c.img.SetRGBA(x, y, col)
	}
}

func (c *canvas) fillRect(r image.Rectangle, col color.RGBA) {
	draw.Draw(c.img, r.Intersect(c.clip), image.NewUniform(col), image.Point{}, draw.Src)
}

// farAway bounds coordinates before clipping: a value far outside a fixed y
// range maps to a huge (or infinite) pixel coordinate, and clamping it keeps
// the clipping arithmetic finite while barely changing the segment's slope
// where it crosses the plot.
const farAway = 1e7

// line draws a segment thick pixels wide (a square brush), clipped to the
// canvas's clip rectangle before rasterizing, so its cost is bounded by the
// clip rectangle's size whatever the endpoints.
func (c *canvas) line(x0, y0, x1, y1 float64, thick int, col color.RGBA) {
	clamp := func(v float64) float64 { return math.Max(-farAway, math.Min(farAway, v)) }
	x0, y0, x1, y1 = clamp(x0), clamp(y0), clamp(x1), clamp(y1)
	ax, ay, bx, by, ok := clipSegment(x0, y0, x1, y1, c.clip)
	if !ok {
		return
	}
	// Bresenham over the rounded, clipped endpoints.
	px, py := int(math.Round(ax)), int(math.Round(ay))
	qx, qy := int(math.Round(bx)), int(math.Round(by))
	dx, dy := abs(qx-px), -abs(qy-py)
	sx, sy := sign(qx-px), sign(qy-py)
	e := dx + dy
	for {
		c.brush(px, py, thick, col)
		if px == qx && py == qy {
			return
		}
		e2 := 2 * e
		if e2 >= dy {
			e += dy
			px += sx
		}
		if e2 <= dx {
			e += dx
			py += sy
		}
	}
}

// brush paints a thick x thick square whose top-left pixel is (x, y), offset
// so that the square is centred on (x, y) as well as whole pixels allow.
func (c *canvas) brush(x, y, thick int, col color.RGBA) {
	off := (thick - 1) / 2
	for i := range thick {
		for j := range thick {
			c.set(x-off+i, y-off+j, col)
		}
	}
}

// dashedHLine draws a horizontal dashed line from x0 to x1 (inclusive) at
// row y, thick pixels high, with dashes of on pixels and gaps of off pixels.
func (c *canvas) dashedHLine(x0, x1, y, thick, on, off int, col color.RGBA) {
	x0, x1 = max(x0, c.clip.Min.X), min(x1, c.clip.Max.X-1)
	for x := x0; x <= x1; x++ {
		if (x-x0)%(on+off) < on {
			for j := range thick {
				c.set(x, y-(thick-1)/2+j, col)
			}
		}
	}
}

// disc fills the pixels within radius r of (cx, cy).
func (c *canvas) disc(cx, cy, r float64, col color.RGBA) {
	if !finite(cx) || !finite(cy) || math.Abs(cx) > farAway || math.Abs(cy) > farAway {
		return
	}
	x0, x1 := int(math.Floor(cx-r)), int(math.Ceil(cx+r))
	y0, y1 := int(math.Floor(cy-r)), int(math.Ceil(cy+r))
	for y := y0; y <= y1; y++ {
		for x := x0; x <= x1; x++ {
			if dx, dy := float64(x)-cx, float64(y)-cy; dx*dx+dy*dy <= r*r {
				c.set(x, y, col)
			}
		}
	}
}

// text draws s with its left edge at x and its baseline at y. The font
// drawer clips to the image itself.
func (c *canvas) text(s string, x, y int, col color.RGBA) {
	d := font.Drawer{Dst: c.img, Src: image.NewUniform(col), Face: face, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

// textUp draws s rotated a quarter turn anticlockwise, reading bottom to
// top, inside the box whose top-left corner is (x, y): the box is
// lineHeight pixels wide and textWidth(s) pixels high.
func (c *canvas) textUp(s string, x, y int, col color.RGBA) {
	w := textWidth(s)
	if w == 0 {
		return
	}
	tmp := image.NewAlpha(image.Rect(0, 0, w, lineHeight))
	d := font.Drawer{Dst: tmp, Src: image.Opaque, Face: face, Dot: fixed.P(0, ascent)}
	d.DrawString(s)
	for ty := range lineHeight {
		for tx := range w {
			if tmp.AlphaAt(tx, ty).A != 0 {
				c.set(x+ty, y+w-1-tx, col)
			}
		}
	}
}

// textWidth is the advance of s in pixels.
func textWidth(s string) int { return font.MeasureString(face, s).Ceil() }

// fitText returns s, or its longest prefix followed by "..." that is at most
// maxW pixels wide, or "" when not even "..." fits.
func fitText(s string, maxW int) string {
	if textWidth(s) <= maxW {
		return s
	}
	r := []rune(s)
	for n := len(r) - 1; n >= 0; n-- {
		if t := string(r[:n]) + "..."; textWidth(t) <= maxW {
			return t
		}
	}
	return ""
}

// clipSegment clips the segment (x0,y0)-(x1,y1) to the pixel centres of r
// (Liang-Barsky) and reports whether any of it is left.
func clipSegment(x0, y0, x1, y1 float64, r image.Rectangle) (ax, ay, bx, by float64, ok bool) {
	minX, maxX := float64(r.Min.X), float64(r.Max.X-1)
	minY, maxY := float64(r.Min.Y), float64(r.Max.Y-1)
	dx, dy := x1-x0, y1-y0
	p := [4]float64{-dx, dx, -dy, dy}
	q := [4]float64{x0 - minX, maxX - x0, y0 - minY, maxY - y0}
	t0, t1 := 0.0, 1.0
	for i := range p {
		if p[i] == 0 {
			if q[i] < 0 {
				return 0, 0, 0, 0, false
			}
			continue
		}
		t := q[i] / p[i]
		if p[i] < 0 {
			if t > t1 {
				return 0, 0, 0, 0, false
			}
			t0 = math.Max(t0, t)
		} else {
			if t < t0 {
				return 0, 0, 0, 0, false
			}
			t1 = math.Min(t1, t)
		}
	}
	return x0 + t0*dx, y0 + t0*dy, x0 + t1*dx, y0 + t1*dy, true
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func sign(v int) int {
	switch {
	case v < 0:
		return -1
	case v > 0:
		return 1
	}
	return 0
}
