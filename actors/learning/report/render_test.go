package report

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var exampleOut = flag.String("report.example", "", "also write the example chart PNG to this path, to look at")

// fedChart is a typical `hearth poc` chart: two federated runs against a
// centralized baseline.
func fedChart() Chart {
	rounds := make([]float64, 20)
	fedavg := make([]float64, 20)
	skewed := make([]float64, 20)
	for i := range rounds {
		rounds[i] = float64(i + 1)
		fedavg[i] = 0.95 - 0.55*math.Exp(-float64(i)/3)
		skewed[i] = 0.91 - 0.6*math.Exp(-float64(i)/5) + 0.02*math.Sin(float64(i))
	}
	return Chart{
		Title:  "optdigits: test accuracy per round",
		XLabel: "round",
		YLabel: "accuracy",
		Series: []Series{
			{Name: "FedAvg, IID (4 sites)", X: rounds, Y: fedavg},
			{Name: "FedAvg, Dirichlet 0.3", X: rounds, Y: skewed},
		},
		HLines: []HLine{{Name: "centralized", Y: 0.965}},
	}
}

// decode encodes c at the given size and decodes it back, failing the test
// on any error.
func decode(t *testing.T, c Chart, width, height int) image.Image {
	t.Helper()
	var buf bytes.Buffer
	if err := c.PNG(&buf, width, height); err != nil {
		t.Fatalf("PNG(%d, %d) = %v", width, height, err)
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatalf("png.Decode: %v", err)
	}
	return img
}

// pixelsOf returns the points inside r whose colour is exactly col.
func pixelsOf(img image.Image, r image.Rectangle, col color.RGBA) []image.Point {
	var out []image.Point
	r = r.Intersect(img.Bounds())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			if color.RGBAModel.Convert(img.At(x, y)).(color.RGBA) == col {
				out = append(out, image.Pt(x, y))
			}
		}
	}
	return out
}

func TestPNGDecodesAtRequestedSize(t *testing.T) {
	for _, size := range []image.Point{{MinWidth, MinHeight}, {640, 400}, {1200, 300}, {300, 900}} {
		t.Run(fmt.Sprintf("%dx%d", size.X, size.Y), func(t *testing.T) {
			img := decode(t, fedChart(), size.X, size.Y)
			if got := img.Bounds().Size(); got != size {
				t.Fatalf("decoded size = %v, want %v", got, size)
			}
		})
	}
}

func TestPNGDrawsEverySeriesInItsColour(t *testing.T) {
	c := fedChart()
	c.Series = append(c.Series, Series{Name: "FedProx", X: []float64{1, 10, 20}, Y: []float64{0.3, 0.6, 0.8}})
	const w, h = 640, 400
	img := decode(t, c, w, h)
	l, err := c.layout(w, h)
	if err != nil {
		t.Fatal(err)
	}
	plot := l.frame.Inset(1)
	seen := map[color.RGBA]bool{}
	for i, s := range c.Series {
		col := colour(i)
		if seen[col] {
			t.Fatalf("series %d shares colour %v with an earlier one", i, col)
		}
		seen[col] = true
		if n := len(pixelsOf(img, plot, col)); n < 50 {
			t.Errorf("series %q: %d pixels of %v inside the plot, want a drawn line", s.Name, n, col)
		}
	}
	ref := colour(len(c.Series))
	if seen[ref] {
		t.Fatalf("reference line shares colour %v with a series", ref)
	}
	if n := len(pixelsOf(img, plot, ref)); n < 50 {
		t.Errorf("reference line: %d pixels of %v inside the plot, want a dashed line", n, ref)
	}
	// The legend repeats each colour under the plot.
	below := image.Rect(0, l.frame.Max.Y, w, h)
	for i := range len(c.Series) + len(c.HLines) {
		if len(pixelsOf(img, below, colour(i))) == 0 {
			t.Errorf("legend has no sample of line %d's colour %v", i, colour(i))
		}
	}
}

func TestRisingSeriesEndsHigher(t *testing.T) {
	c := Chart{Series: []Series{{Name: "acc", X: []float64{1, 2, 3, 4, 5}, Y: []float64{0.2, 0.4, 0.5, 0.7, 0.9}}}}
	const w, h = 400, 300
	img := decode(t, c, w, h)
	l, err := c.layout(w, h)
	if err != nil {
		t.Fatal(err)
	}
	pts := pixelsOf(img, l.frame.Inset(1), colour(0))
	if len(pts) == 0 {
		t.Fatal("no series pixels in the plot")
	}
	first, last := pts[0], pts[0]
	for _, p := range pts {
		if p.X < first.X {
			first = p
		}
		if p.X > last.X {
			last = p
		}
	}
	if last.Y >= first.Y-l.data.Dy()/2 {
		t.Errorf("last point drawn at y=%d, first at y=%d; want the last well above the first", last.Y, first.Y)
	}
}

func TestFixedRangeMapsToDataEdges(t *testing.T) {
	c := Chart{YMin: 0, YMax: 1, Series: []Series{{X: []float64{1, 2}, Y: []float64{0, 1}}}}
	l, err := c.layout(400, 300)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := l.py(1), l.data.Min.Y; got != want {
		t.Errorf("YMax maps to row %d, want the data area's top row %d", got, want)
	}
	if got, want := l.py(0), l.data.Max.Y-1; got != want {
		t.Errorf("YMin maps to row %d, want the data area's bottom row %d", got, want)
	}
	if got, want := l.px(2), l.data.Max.X-1; got != want {
		t.Errorf("last x maps to column %d, want the data area's right column %d", got, want)
	}
}

func TestPNGRefusesSize(t *testing.T) {
	for _, size := range []image.Point{{0, 0}, {-1, 300}, {MinWidth - 1, 300}, {400, MinHeight - 1}, {MaxSide + 1, 300}, {400, math.MaxInt}} {
		t.Run(fmt.Sprintf("%dx%d", size.X, size.Y), func(t *testing.T) {
			if err := fedChart().PNG(failWriter{t}, size.X, size.Y); !errors.Is(err, ErrImageSize) {
				t.Fatalf("PNG = %v, want an error wrapping ErrImageSize", err)
			}
		})
	}
}

func TestPNGReturnsWriteError(t *testing.T) {
	boom := errors.New("disk full")
	if err := fedChart().PNG(errWriter{boom}, 400, 300); !errors.Is(err, boom) {
		t.Fatalf("PNG = %v, want the writer's error wrapped", err)
	}
}

// TestPNGAwkwardCharts draws valid but awkward charts at the smallest size:
// every chart that validates must draw.
func TestPNGAwkwardCharts(t *testing.T) {
	many := make([]Series, 40)
	for i := range many {
		many[i] = Series{Name: fmt.Sprintf("site-%02d with a rather long descriptive name", i), X: []float64{1, 2}, Y: []float64{float64(i), float64(i + 1)}}
	}
	long := strings.Repeat("a very long title ", 30)
	tests := []struct {
		name  string
		chart Chart
	}{
		{"one point", Chart{Series: []Series{{X: []float64{3}, Y: []float64{0.7}}}}},
		{"data outside fixed range", Chart{YMin: 0, YMax: 1, Series: []Series{{X: []float64{1, 2, 3}, Y: []float64{-1e300, 0.5, 1e300}}}}},
		{"huge values", Chart{Series: []Series{{X: []float64{-1e300, 1e300}, Y: []float64{-1e307, 1e307}}}}},
		{"tiny span", Chart{Series: []Series{{X: []float64{1, 2}, Y: []float64{1, 1 + 1e-15}}}}},
		{"tiny values", Chart{Series: []Series{{X: []float64{1, 2}, Y: []float64{5e-324, 1e-323}}}}},
		{"decreasing x", Chart{Series: []Series{{X: []float64{3, 2, 1}, Y: []float64{1, 2, 3}}}}},
		{"many long-named series", Chart{Title: long, XLabel: long, YLabel: long, Series: many}},
		{"non-ASCII and control text", Chart{Title: "genauigkeit \u00fcber runden\n\t", Series: []Series{{Name: "\xff\xfe", X: []float64{1}, Y: []float64{1}}}}},
		{"reference line only sets range", Chart{Series: []Series{{X: []float64{1, 2}, Y: []float64{0.5, 0.5}}}, HLines: []HLine{{Y: 0.5}, {Y: 0.5}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.chart.Validate(); err != nil {
				t.Fatalf("Validate() = %v", err)
			}
			decode(t, tt.chart, MinWidth, MinHeight)
			decode(t, tt.chart, 800, 500)
		})
	}
}

func TestColoursDistinct(t *testing.T) {
	seen := map[color.RGBA]int{}
	for i := range 40 {
		c := colour(i)
		if j, ok := seen[c]; ok {
			t.Fatalf("lines %d and %d share colour %v", j, i, c)
		}
		for _, ui := range []color.RGBA{background, gridColour, axisColour, textColour} {
			if c == ui {
				t.Fatalf("line %d has the colour %v of the chart's furniture", i, c)
			}
		}
		seen[c] = i
	}
}

func TestPNGDeterministic(t *testing.T) {
	var a, b bytes.Buffer
	if err := fedChart().PNG(&a, 500, 300); err != nil {
		t.Fatal(err)
	}
	if err := fedChart().PNG(&b, 500, 300); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("the same chart encoded to different bytes")
	}
}

// TestExampleFile writes the example chart to a file, as `hearth poc` does;
// pass -report.example=PATH to keep a copy to look at.
func TestExampleFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "accuracy.png")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := fedChart().PNG(f, 800, 500); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(bytes.NewReader(data)); err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	if *exampleOut != "" {
		if err := os.WriteFile(*exampleOut, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzPNG checks that no input panics, and that every chart Validate
// accepts draws at the smallest size.
func FuzzPNG(f *testing.F) {
	f.Add(1.0, 0.5, 2.0, 0.9, 0.0, 0.0, 0.95, "acc")
	f.Add(1.0, -1e300, 1.0, 1e300, 0.0, 1.0, 2.0, "")
	f.Add(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, "\xff")
	f.Add(math.NaN(), 1.0, 2.0, math.Inf(1), 1.0, -1.0, math.NaN(), "x")
	f.Fuzz(func(t *testing.T, x0, y0, x1, y1, ymin, ymax, ref float64, name string) {
		c := Chart{Title: name, XLabel: name, YLabel: name, YMin: ymin, YMax: ymax,
			Series: []Series{{Name: name, X: []float64{x0, x1}, Y: []float64{y0, y1}}},
			HLines: []HLine{{Name: name, Y: ref}}}
		verr := c.Validate()
		perr := c.PNG(io.Discard, MinWidth, MinHeight)
		if (verr == nil) != (perr == nil) {
			t.Fatalf("Validate() = %v but PNG() = %v", verr, perr)
		}
	})
}

type errWriter struct{ err error }

func (w errWriter) Write([]byte) (int, error) { return 0, w.err }
