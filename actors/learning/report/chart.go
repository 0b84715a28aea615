// Package report draws federated-learning metrics as PNG line charts: one
// line per series of (round, value) points, optional dashed reference lines
// such as a centralized baseline, axes with numeric tick labels, a title,
// axis labels and a legend.
//
// It depends only on the standard library's image packages and the fixed
// 7x13 bitmap font of golang.org/x/image/font/basicfont, so that `hearth poc`
// can write a chart next to its metrics JSON without a plotting stack.
// Rendering is deterministic: the same Chart and size always encode to the
// same PNG bytes. Text is ASCII; other characters draw as a replacement box.
package report

import (
	"errors"
	"fmt"
	"math"
)

// ErrInvalidChart is wrapped by every error that Validate returns, and so by
// PNG when the chart itself cannot be drawn.
var ErrInvalidChart = errors.New("report: invalid chart")

// ErrImageSize is wrapped by the error PNG returns when the requested image
// is too small or too large (see PNG for the limits).
var ErrImageSize = errors.New("report: unsupported image size")

// Series is one line of the chart: the value Y[i] at round X[i]. Points are
// joined in the order given, so X is normally ascending. Name labels the
// line in the legend; an empty name is shown as "series N".
type Series struct {
	Name string
	X    []float64
	Y    []float64
}

// HLine is a horizontal dashed reference line across the whole plot at
// value Y, such as the accuracy of a centralized baseline. Name labels it in
// the legend; an empty name is shown as "reference N".
type HLine struct {
	Name string
	Y    float64
}

// Chart describes one line chart. The zero value is not drawable: a chart
// needs at least one Series.
type Chart struct {
	// Title is drawn centred above the plot; empty means no title.
	Title string
	// XLabel is drawn under the x axis, e.g. "round"; empty means none.
	XLabel string
	// YLabel is drawn up the y axis, e.g. "accuracy"; empty means none.
	YLabel string
	// YMin and YMax fix the y axis range; values outside it are clipped at
	// the plot's edge. Both zero means the range fits the data and the
	// reference lines with a small margin.
	YMin, YMax float64
	// Series are the lines, each in its own colour, in legend order.
	Series []Series
	// HLines are reference lines, drawn dashed under the series and listed
	// in the legend after them.
	HLines []HLine
}

// Validate reports whether the chart can be drawn: it needs at least one
// series, every series needs as many X values as Y values and at least one
// of each, every value (including YMin, YMax and the reference lines) must be
// finite, a fixed y range must have YMin < YMax, and the data must not span
// more than a float64 can hold. Every error wraps ErrInvalidChart.
func (c Chart) Validate() error {
	_, _, err := c.bounds()
	return err
}

// axisRange is the closed interval of data values one axis shows.
type axisRange struct{ min, max float64 }

func (r axisRange) span() float64 { return r.max - r.min }

// fitMargin is the share of the data's span added above and below it when
// the y range is fitted to the data.
const fitMargin = 0.05

// bounds validates the chart and returns the data ranges of the x and y
// axes. It is the single place that decides whether a chart is drawable, so
// Validate and PNG always agree.
func (c Chart) bounds() (x, y axisRange, err error) {
	if len(c.Series) == 0 {
		return x, y, fmt.Errorf("%w: no series", ErrInvalidChart)
	}
	x = axisRange{math.Inf(1), math.Inf(-1)}
	y = x
	for i, s := range c.Series {
		if len(s.X) != len(s.Y) {
			return x, y, fmt.Errorf("%w: series %d (%q) has %d x values and %d y values",
				ErrInvalidChart, i+1, s.Name, len(s.X), len(s.Y))
		}
		if len(s.X) == 0 {
			return x, y, fmt.Errorf("%w: series %d (%q) has no points", ErrInvalidChart, i+1, s.Name)
		}
		for j := range s.X {
			if !finite(s.X[j]) || !finite(s.Y[j]) {
				return x, y, fmt.Errorf("%w: series %d (%q) point %d is (%v, %v), want finite numbers",
					ErrInvalidChart, i+1, s.Name, j+1, s.X[j], s.Y[j])
			}
			x = x.include(s.X[j])
			y = y.include(s.Y[j])
		}
	}
	for i, h := range c.HLines {
		if !finite(h.Y) {
			return x, y, fmt.Errorf("%w: reference line %d (%q) is at %v, want a finite number",
				ErrInvalidChart, i+1, h.Name, h.Y)
		}
		y = y.include(h.Y)
	}
	if !finite(c.YMin) || !finite(c.YMax) {
		return x, y, fmt.Errorf("%w: y range [%v, %v] is not finite", ErrInvalidChart, c.YMin, c.YMax)
	}

	x = x.widenIfPoint()
	if c.YMin != 0 || c.YMax != 0 {
		if !(c.YMin < c.YMax) {
			return x, y, fmt.Errorf("%w: y range [%v, %v] is empty; want YMin < YMax, or both zero to fit the data",
				ErrInvalidChart, c.YMin, c.YMax)
		}
		y = axisRange{c.YMin, c.YMax}
	} else if y.min == y.max {
		y = y.widenIfPoint()
	} else {
		m := y.span() * fitMargin
		y = axisRange{y.min - m, y.max + m}
	}
	if !finite(x.span()) || !finite(y.span()) || !finite(y.min) || !finite(y.max) {
		return x, y, fmt.Errorf("%w: values span too wide a range to plot", ErrInvalidChart)
	}
	return x, y, nil
}

// include returns r grown to contain v.
func (r axisRange) include(v float64) axisRange {
	return axisRange{math.Min(r.min, v), math.Max(r.max, v)}
}

// widenIfPoint returns r unchanged unless it is a single value, which it
// widens by a tenth of the value (or by one where that is too small to
// change it) on each side, so that the value sits mid-axis.
func (r axisRange) widenIfPoint() axisRange {
	if r.min != r.max {
		return r
	}
	v := r.min
	m := math.Abs(v) * 0.1
	if w := (axisRange{v - m, v + m}); w.min < w.max {
		return w
	}
	return axisRange{v - 1, v + 1}
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
