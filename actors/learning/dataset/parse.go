package dataset

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// readEmbedded returns the bytes of one embedded file under files/.
func readEmbedded(name string) ([]byte, error) {
	b, err := files.ReadFile("files/" + name)
	if err != nil {
		return nil, fmt.Errorf("embedded file %s: %w", name, err)
	}
	return b, nil
}

// eachLine calls fn with every non-blank line of the embedded file and its
// 1-based line number, stopping at the first error.
func eachLine(name string, fn func(n int, line string) error) error {
	b, err := readEmbedded(name)
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if err := fn(n, line); err != nil {
			return fmt.Errorf("%s line %d: %w", name, n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// optdigitsFeatures is the number of 4x4 block counts in an optdigits row.
const optdigitsFeatures = 64

// parseOptdigits reads one optdigits file: 64 integers 0..16 and a digit
// label per line. Features are divided by 16.
func parseOptdigits(name string) (*Set, error) {
	s := &Set{Classes: 10, Features: optdigitsFeatures, Name: "optdigits"}
	err := eachLine(name, func(_ int, line string) error {
		fields := strings.Split(line, ",")
		if len(fields) != optdigitsFeatures+1 {
			return fmt.Errorf("%d fields, want %d", len(fields), optdigitsFeatures+1)
		}
		for i, f := range fields {
			v, err := strconv.Atoi(f)
			if err != nil {
				return fmt.Errorf("field %d: %w", i, err)
			}
			if i == optdigitsFeatures {
				if v < 0 || v > 9 {
					return fmt.Errorf("label %d out of range", v)
				}
				s.Y = append(s.Y, v)
				break
			}
			if v < 0 || v > 16 {
				return fmt.Errorf("field %d: value %d out of 0..16", i, v)
			}
			s.X = append(s.X, float32(v)/16)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

func loadOptdigits() (train, test *Set, err error) {
	if train, err = parseOptdigits("optdigits.tra"); err != nil {
		return nil, nil, err
	}
	if test, err = parseOptdigits("optdigits.tes"); err != nil {
		return nil, nil, err
	}
	return train, test, nil
}

// wdbcFeatures is the number of real-valued features in a WDBC row.
const wdbcFeatures = 30

// parseWDBC reads wdbc.data: id, diagnosis (M or B), 30 real features per
// line. Malignant is class 1. Features are returned unscaled.
func parseWDBC() (*Set, error) {
	s := &Set{Classes: 2, Features: wdbcFeatures, Name: "wdbc"}
	err := eachLine("wdbc.data", func(_ int, line string) error {
		fields := strings.Split(line, ",")
		if len(fields) != wdbcFeatures+2 {
			return fmt.Errorf("%d fields, want %d", len(fields), wdbcFeatures+2)
		}
		switch fields[1] {
		case "M":
			s.Y = append(s.Y, 1)
		case "B":
			s.Y = append(s.Y, 0)
		default:
			return fmt.Errorf("diagnosis %q, want M or B", fields[1])
		}
		for i, f := range fields[2:] {
			v, err := strconv.ParseFloat(f, 64)
			if err != nil {
				return fmt.Errorf("feature %d: %w", i, err)
			}
			s.X = append(s.X, float32(v))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

func loadWDBC() (train, test *Set, err error) {
	all, err := parseWDBC()
	if err != nil {
		return nil, nil, err
	}
	trainIdx, testIdx := stratifiedSplit(all.Y, all.Classes, SplitSeed)
	train, test = all.subset(trainIdx), all.subset(testIdx)
	for _, s := range []*Set{train, test} {
		scaleWDBC(s)
	}
	return train, test, nil
}

// scaleWDBC z-scores every feature of s in place with the shipped train-split
// constants.
func scaleWDBC(s *Set) {
	for i, v := range s.X {
		c := i % wdbcFeatures
		s.X[i] = float32((float64(v) - wdbcMean(c)) / wdbcStd(c))
	}
}

// mnistSide is the side of an MNIST image in pixels.
const mnistSide = 28

// parseMNIST reads the gzipped idx3 images and idx1 labels of the t10k set.
// Pixels are divided by 255.
func parseMNIST() (*Set, error) {
	images, err := gunzipEmbedded("mnist-t10k-images-idx3-ubyte.gz")
	if err != nil {
		return nil, err
	}
	labels, err := gunzipEmbedded("mnist-t10k-labels-idx1-ubyte.gz")
	if err != nil {
		return nil, err
	}
	if len(images) < 16 || binary.BigEndian.Uint32(images) != 0x803 {
		return nil, fmt.Errorf("mnist images: not an idx3 file")
	}
	if len(labels) < 8 || binary.BigEndian.Uint32(labels) != 0x801 {
		return nil, fmt.Errorf("mnist labels: not an idx1 file")
	}
	n := int(binary.BigEndian.Uint32(images[4:]))
	rows, cols := binary.BigEndian.Uint32(images[8:]), binary.BigEndian.Uint32(images[12:])
	if rows != mnistSide || cols != mnistSide {
		return nil, fmt.Errorf("mnist images are %dx%d, want %dx%d", rows, cols, mnistSide, mnistSide)
	}
	const features = mnistSide * mnistSide
	if len(images) != 16+n*features {
		return nil, fmt.Errorf("mnist images: %d bytes for %d images", len(images), n)
	}
	if int(binary.BigEndian.Uint32(labels[4:])) != n || len(labels) != 8+n {
		return nil, fmt.Errorf("mnist labels do not match %d images", n)
	}
	s := &Set{X: make([]float32, n*features), Y: make([]int, n), Classes: 10, Features: features, Name: "mnist"}
	for i, p := range images[16:] {
		s.X[i] = float32(p) / 255
	}
	for i, l := range labels[8:] {
		if l > 9 {
			return nil, fmt.Errorf("mnist label %d of image %d out of range", l, i)
		}
		s.Y[i] = int(l)
	}
	return s, nil
}

// gunzipEmbedded returns the decompressed bytes of one embedded .gz file.
func gunzipEmbedded(name string) ([]byte, error) {
	b, err := readEmbedded(name)
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}

func loadMNIST() (train, test *Set, err error) {
	all, err := parseMNIST()
	if err != nil {
		return nil, nil, err
	}
	trainIdx, testIdx := stratifiedSplit(all.Y, all.Classes, SplitSeed)
	return all.subset(trainIdx), all.subset(testIdx), nil
}
