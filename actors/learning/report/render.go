package report

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"strconv"
)

// Limits on the image size PNG accepts: below the minimum the labels leave
// no room for the plot, and the maximum bounds the memory one chart takes
// (4096x4096 RGBA is 64 MiB).
const (
	MinWidth  = 240
	MinHeight = 180
	MaxSide   = 4096
)

// PNG validates the chart (see Validate), draws it at width x height pixels
// and writes it to w as a PNG: a white background, light grid lines, the
// reference lines dashed, each series as a two-pixel line in its own colour
// (with a dot per point when the points are sparse enough to tell apart),
// axes with numeric tick labels, the title above, the axis labels beside the
// axes and a legend under the plot. Text too long for the image is cut short
// with "...". Width must be in [MinWidth, MaxSide] and height in [MinHeight,
// MaxSide]; a size outside them, or too small for the chart's labels, gives
// an error wrapping ErrImageSize. Nothing is written to w unless the chart
// and size are valid; an error from w is returned wrapped.
func (c Chart) PNG(w io.Writer, width, height int) error {
	img, err := c.render(width, height)
	if err != nil {
		return err
	}
	if err := png.Encode(w, img); err != nil {
		return fmt.Errorf("report: encode png: %w", err)
	}
	return nil
}

// Colours of everything that is not data.
var (
	background = color.RGBA{0xff, 0xff, 0xff, 0xff}
	gridColour = color.RGBA{0xe8, 0xe8, 0xe8, 0xff}
	axisColour = color.RGBA{0x44, 0x44, 0x44, 0xff}
	textColour = color.RGBA{0x22, 0x22, 0x22, 0xff}
)

// Layout constants, in pixels.
const (
	pad        = 8 // outer margin of the image
	tickLen    = 4 // length of a tick mark outside the axes
	dataInset  = 6 // gap between the axes box and the data range, so edge points show whole
	lineWidth  = 2 // series line thickness
	markerR    = 2.5
	markerGap  = 10 // minimum pixels per point for drawing point markers
	swatchW    = 22 // legend line sample
	swatchGap  = 5  // between a legend sample and its text
	itemGap    = 16 // between legend entries on one row
	rowHeight  = 16 // legend row pitch
	dashOn     = 6
	dashOff    = 4
	minPlotW   = 60
	minPlotH   = 40
	yTickPitch = 40 // target pixels between y ticks
	xTickPitch = 60 // target pixels between x ticks
	digitPitch = 12 // least pixels between y tick labels: digits are 9 high
)

// legendItem is one legend entry, placed at x within its row.
type legendItem struct {
	text   string
	colour color.RGBA
	dashed bool // a reference line
	swatch bool // false for the "+N more" note
	x      int
}

// layout is where every part of the chart goes for one image size.
type layout struct {
	xr, yr    axisRange
	frame     image.Rectangle // the axes box; data is drawn clipped to its inside
	data      image.Rectangle // the rectangle the axis ranges map onto
	title     string
	titleAt   image.Point // baseline start
	xLabel    string
	xLabelAt  image.Point // baseline start
	yLabel    string
	yLabelAt  image.Point // top-left of the rotated text
	xTicks    []tick
	yTicks    []tick
	xTickBase int // baseline of x tick labels
	legend    [][]legendItem
	legendTop int
}

// render validates the chart and size and draws the image.
func (c Chart) render(width, height int) (*image.RGBA, error) {
	l, err := c.layout(width, height)
	if err != nil {
		return nil, err
	}
	cv := newCanvas(width, height, background)
	inside := l.frame.Inset(1)

	// Grid, then reference lines, then series, all clipped to the axes box.
	cv.clip = inside
	for _, t := range l.yTicks {
		cv.fillRect(image.Rect(inside.Min.X, l.py(t.v), inside.Max.X, l.py(t.v)+1), gridColour)
	}
	for _, t := range l.xTicks {
		cv.fillRect(image.Rect(l.px(t.v), inside.Min.Y, l.px(t.v)+1, inside.Max.Y), gridColour)
	}
	for j, h := range c.HLines {
		y := l.pyf(h.Y)
		if y >= float64(inside.Min.Y) && y < float64(inside.Max.Y) {
			cv.dashedHLine(inside.Min.X, inside.Max.X-1, int(math.Round(y)), lineWidth, dashOn, dashOff, colour(len(c.Series)+j))
		}
	}
	for i, s := range c.Series {
		col := colour(i)
		for k := 1; k < len(s.X); k++ {
			cv.line(l.pxf(s.X[k-1]), l.pyf(s.Y[k-1]), l.pxf(s.X[k]), l.pyf(s.Y[k]), lineWidth, col)
		}
		if len(s.X) == 1 || float64(l.data.Dx())/float64(len(s.X)) >= markerGap {
			for k := range s.X {
				cv.disc(l.pxf(s.X[k]), l.pyf(s.Y[k]), markerR, col)
			}
		}
	}

	// Axes, ticks and their labels.
	cv.clip = cv.img.Bounds()
	f := l.frame
	cv.fillRect(image.Rect(f.Min.X, f.Min.Y, f.Max.X, f.Min.Y+1), axisColour)
	cv.fillRect(image.Rect(f.Min.X, f.Max.Y-1, f.Max.X, f.Max.Y), axisColour)
	cv.fillRect(image.Rect(f.Min.X, f.Min.Y, f.Min.X+1, f.Max.Y), axisColour)
	cv.fillRect(image.Rect(f.Max.X-1, f.Min.Y, f.Max.X, f.Max.Y), axisColour)
	for _, t := range l.yTicks {
		y := l.py(t.v)
		cv.fillRect(image.Rect(f.Min.X-tickLen, y, f.Min.X, y+1), axisColour)
		cv.text(t.label, f.Min.X-tickLen-3-textWidth(t.label), y+5, textColour)
	}
	for _, t := range l.xTicks {
		x := l.px(t.v)
		cv.fillRect(image.Rect(x, f.Max.Y, x+1, f.Max.Y+tickLen), axisColour)
		w := textWidth(t.label)
		cv.text(t.label, min(max(x-w/2, 0), width-w), l.xTickBase, textColour)
	}

	// Title (drawn twice a pixel apart for weight), axis labels, legend.
	if l.title != "" {
		cv.text(l.title, l.titleAt.X, l.titleAt.Y, textColour)
		cv.text(l.title, l.titleAt.X+1, l.titleAt.Y, textColour)
	}
	if l.xLabel != "" {
		cv.text(l.xLabel, l.xLabelAt.X, l.xLabelAt.Y, textColour)
	}
	if l.yLabel != "" {
		cv.textUp(l.yLabel, l.yLabelAt.X, l.yLabelAt.Y, textColour)
	}
	for r, row := range l.legend {
		top := l.legendTop + r*rowHeight
		mid := top + 6 // the vertical middle of digits and lower-case letters
		for _, it := range row {
			x := it.x
			if it.swatch {
				if it.dashed {
					cv.dashedHLine(x, x+swatchW-1, mid, lineWidth, dashOn, dashOff, it.colour)
				} else {
					cv.line(float64(x), float64(mid), float64(x+swatchW-1), float64(mid), lineWidth, it.colour)
					cv.disc(float64(x+swatchW/2), float64(mid), markerR, it.colour)
				}
				x += swatchW + swatchGap
			}
			cv.text(it.text, x, top+ascent, textColour)
		}
	}
	return cv.img, nil
}

// layout validates the chart and the size and places every part.
func (c Chart) layout(width, height int) (layout, error) {
	var l layout
	if width < MinWidth || width > MaxSide || height < MinHeight || height > MaxSide {
		return l, fmt.Errorf("%w: %dx%d; want width in [%d, %d] and height in [%d, %d]",
			ErrImageSize, width, height, MinWidth, MaxSide, MinHeight, MaxSide)
	}
	var err error
	if l.xr, l.yr, err = c.bounds(); err != nil {
		return l, err
	}
	inner := width - 2*pad

	// Vertical budget: title on top; tick labels, x label and legend below.
	top := pad + 4 // room for half of the top y tick label
	if l.title = fitText(c.Title, inner); l.title != "" {
		l.titleAt = image.Pt((width-textWidth(l.title))/2, pad+ascent)
		top += lineHeight + 6
	}
	l.legend = packLegend(c.legendEntries(), inner, max(1, height/5/rowHeight))
	bottom := pad + tickLen + 3 + lineHeight
	l.xLabel = fitText(c.XLabel, inner)
	if l.xLabel != "" {
		bottom += 4 + lineHeight
	}
	bottom += 8 + len(l.legend)*rowHeight
	frameTop, frameBottom := top, height-bottom
	dataH := frameBottom - frameTop - 2*dataInset
	if dataH < minPlotH {
		return l, fmt.Errorf("%w: %dx%d leaves the plot %d pixels high; want at least %d",
			ErrImageSize, width, height, dataH, minPlotH)
	}
	l.yTicks = fitYTicks(l.yr, dataH)

	// Horizontal budget: y label and y tick labels on the left.
	labelW := 0
	for _, t := range l.yTicks {
		labelW = max(labelW, textWidth(t.label))
	}
	left := pad + labelW + 3 + tickLen
	if c.YLabel != "" {
		left += lineHeight + 6
	}
	right := pad + 12 // room for half of the last x tick label
	l.frame = image.Rect(left, frameTop, width-right, frameBottom)
	l.data = l.frame.Inset(dataInset)
	if l.data.Dx() < minPlotW {
		return l, fmt.Errorf("%w: %dx%d leaves the plot %d pixels wide; want at least %d",
			ErrImageSize, width, height, l.data.Dx(), minPlotW)
	}
	if l.yLabel = fitText(c.YLabel, l.frame.Dy()); l.yLabel != "" {
		l.yLabelAt = image.Pt(pad, l.frame.Min.Y+(l.frame.Dy()-textWidth(l.yLabel))/2)
	}
	l.xTicks = l.fitXTicks(allIntegers(c.Series))
	l.xTickBase = l.frame.Max.Y + tickLen + 2 + ascent
	if l.xLabel != "" {
		w := textWidth(l.xLabel)
		x := l.frame.Min.X + (l.frame.Dx()-w)/2
		l.xLabelAt = image.Pt(min(max(x, pad), width-pad-w), l.xTickBase+4+lineHeight)
		l.legendTop = l.xLabelAt.Y + 2 + 8
	} else {
		l.legendTop = l.xTickBase + 2 + 8
	}
	return l, nil
}

// fitYTicks picks about one y tick per yTickPitch pixels of a data area
// dataH pixels high, or more where that leaves fewer than two ticks and
// their labels still fit between each other.
func fitYTicks(r axisRange, dataH int) []tick {
	target := dataH / yTickPitch
	ts := ticks(r, target, false)
	for t := target + 1; len(ts) < 2 && t <= 10; t++ {
		next := ticks(r, t, false)
		if len(next) >= 2 && (next[1].v-next[0].v)/r.span()*float64(dataH-1) < digitPitch {
			break
		}
		ts = next
	}
	return ts
}

// fitXTicks picks the most x ticks, up to one per xTickPitch pixels, whose
// labels do not crowd each other.
func (l *layout) fitXTicks(integer bool) []tick {
	for target := max(l.data.Dx()/xTickPitch, 2); ; target-- {
		ts := ticks(l.xr, target, integer)
		if target <= 2 || l.xTicksFit(ts) {
			return ts
		}
	}
}

// xTicksFit reports whether neighbouring tick labels keep a gap between
// them.
func (l *layout) xTicksFit(ts []tick) bool {
	for i := 1; i < len(ts); i++ {
		room := l.px(ts[i].v) - l.px(ts[i-1].v)
		if need := (textWidth(ts[i-1].label)+textWidth(ts[i].label))/2 + 10; room < need {
			return false
		}
	}
	return true
}

// pxf and pyf map data values to pixel coordinates (y grows downward); px
// and py round them for ticks, which always lie inside the ranges.
func (l *layout) pxf(x float64) float64 {
	return float64(l.data.Min.X) + (x-l.xr.min)/l.xr.span()*float64(l.data.Dx()-1)
}

func (l *layout) pyf(y float64) float64 {
	return float64(l.data.Max.Y-1) - (y-l.yr.min)/l.yr.span()*float64(l.data.Dy()-1)
}

func (l *layout) px(x float64) int { return int(math.Round(l.pxf(x))) }
func (l *layout) py(y float64) int { return int(math.Round(l.pyf(y))) }

// legendEntries lists the series and then the reference lines, with their
// colours and default names.
func (c Chart) legendEntries() []legendItem {
	var out []legendItem
	for i, s := range c.Series {
		name := s.Name
		if name == "" {
			name = "series " + strconv.Itoa(i+1)
		}
		out = append(out, legendItem{text: name, colour: colour(i), swatch: true})
	}
	for j, h := range c.HLines {
		name := h.Name
		if name == "" {
			name = "reference " + strconv.Itoa(j+1)
		}
		out = append(out, legendItem{text: name, colour: colour(len(c.Series) + j), dashed: true, swatch: true})
	}
	return out
}

// packLegend lays entries out left to right in centred rows at most avail
// pixels wide. When they need more than maxRows rows, the tail is replaced
// by a "+N more" note.
func packLegend(entries []legendItem, avail, maxRows int) [][]legendItem {
	for i := range entries {
		entries[i].text = fitText(entries[i].text, avail-swatchW-swatchGap)
	}
	// No more than this many entries can fit, whatever their names.
	capacity := maxRows * (avail/(swatchW+swatchGap+itemGap) + 1)
	for keep := min(len(entries), capacity); keep >= 0; keep-- {
		items := entries[:keep:keep]
		if keep < len(entries) {
			items = append(items, legendItem{text: fmt.Sprintf("+%d more", len(entries)-keep)})
		}
		if rows := packRows(items, avail); len(rows) <= maxRows {
			return rows
		}
	}
	return nil
}

// packRows fills rows greedily and centres each within avail pixels,
// starting at the image's left margin.
func packRows(items []legendItem, avail int) [][]legendItem {
	var rows [][]legendItem
	var row []legendItem
	used := 0
	flush := func() {
		off := pad + (avail-used)/2
		for i := range row {
			row[i].x += off
		}
		rows = append(rows, row)
		row, used = nil, 0
	}
	for _, it := range items {
		w := textWidth(it.text)
		if it.swatch {
			w += swatchW + swatchGap
		}
		if len(row) > 0 && used+itemGap+w > avail {
			flush()
		}
		if len(row) > 0 {
			used += itemGap
		}
		it.x = used
		row = append(row, it)
		used += w
	}
	if len(row) > 0 {
		flush()
	}
	return rows
}

// palette is the first ten line colours (the Tableau 10 set): distinct at a
// glance and distinct from the greys of the grid, axes and text.
var palette = [...]color.RGBA{
	{0x1f, 0x77, 0xb4, 0xff}, // blue
	{0xff, 0x7f, 0x0e, 0xff}, // orange
	{0x2c, 0xa0, 0x2c, 0xff}, // green
	{0xd6, 0x27, 0x28, 0xff}, // red
	{0x94, 0x67, 0xbd, 0xff}, // purple
	{0x8c, 0x56, 0x4b, 0xff}, // brown
	{0xe3, 0x77, 0xc2, 0xff}, // pink
	{0x7f, 0x7f, 0x7f, 0xff}, // grey
	{0xbc, 0xbd, 0x22, 0xff}, // olive
	{0x17, 0xbe, 0xcf, 0xff}, // cyan
}

// colour is the colour of the i-th line (series first, then reference
// lines): the palette, then hues spaced by the golden angle.
func colour(i int) color.RGBA {
	if i < len(palette) {
		return palette[i]
	}
	h := math.Mod(float64(i-len(palette))*0.618033988749895+0.1, 1)
	return hsv(h, 0.7, 0.75)
}

// hsv converts a hue in [0, 1) with saturation s and value v to RGB.
func hsv(h, s, v float64) color.RGBA {
	h6 := h * 6
	k := math.Floor(h6)
	f := h6 - k
	p, q, t := v*(1-s), v*(1-s*f), v*(1-s*(1-f))
	var r, g, b float64
	switch int(k) % 6 {
	case 0:
		r, g, b = v, t, p
	case 1:
		r, g, b = q, v, p
	case 2:
		r, g, b = p, v, t
	case 3:
		r, g, b = p, q, v
	case 4:
		r, g, b = t, p, v
	default:
		r, g, b = v, p, q
	}
	return color.RGBA{uint8(r*255 + 0.5), uint8(g*255 + 0.5), uint8(b*255 + 0.5), 0xff}
}
