// Command baplot draws perf/'s PNG plots from the CSV files the
// measurements write (standard library only: image/png and a built-in 5x7
// bitmap font).
//
//	baplot [-sizes perf/out/sizes.csv] [-failover perf/out/failover.csv] [-out perf/out]
//
// sizes.csv (perf/more.sh: size,appliance_mpps,reference_mpps,...) becomes
// throughput.png: delivered Mpps against frame size, appliance and C
// reference. failover.csv (bafailover -series: mode,run,t_ms,frames)
// becomes failover.png: frames received per millisecond around the
// link-down (t = 0), first run of each mode. A missing input is skipped.
// It prints one line per plot written: plot=FILE points=N.
package main

import (
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
)

func main() {
	sizes := flag.String("sizes", "perf/out/sizes.csv", "throughput against frame size (perf/more.sh)")
	failover := flag.String("failover", "perf/out/failover.csv", "per-ms series around a failover (bafailover -series)")
	out := flag.String("out", "perf/out", "output directory")
	flag.Parse()
	n := 0
	for _, p := range []struct {
		in, png string
		fn      func([][]string) (*chart, error)
	}{{*sizes, "throughput.png", sizesChart}, {*failover, "failover.png", failoverChart}} {
		rows, err := readCSV(p.in)
		if errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(os.Stderr, "baplot: %s missing, skipped\n", p.in)
			continue
		}
		if err == nil {
			var c *chart
			if c, err = p.fn(rows); err == nil {
				dst := filepath.Join(*out, p.png)
				if err = c.write(dst); err == nil {
					fmt.Printf("plot=%s points=%d\n", dst, c.points())
					n++
				}
			}
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "baplot: %s: %v\n", p.in, err)
			os.Exit(1)
		}
	}
	if n == 0 {
		fmt.Fprintln(os.Stderr, "baplot: nothing to plot")
		os.Exit(1)
	}
}

func readCSV(path string) ([][]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, err
	}
	if len(rows) < 2 {
		return nil, errors.New("no data rows")
	}
	return rows[1:], nil // header off
}

func num(s string) float64 {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return math.NaN()
	}
	return v
}

func sizesChart(rows [][]string) (*chart, error) {
	c := &chart{title: "host->members forwarding, balance-xor, 1 lane, veth copy mode", xlabel: "frame size (bytes)", ylabel: "delivered Mpps", markers: true}
	app := series{name: "appliance (Go)", col: color.RGBA{0x1f, 0x77, 0xb4, 0xff}}
	ref := series{name: "reference (C)", col: color.RGBA{0xd6, 0x27, 0x28, 0xff}}
	for _, r := range rows {
		if len(r) < 3 {
			return nil, fmt.Errorf("row %v: want size,appliance_mpps,reference_mpps", r)
		}
		x := num(r[0])
		if v := num(r[1]); !math.IsNaN(v) {
			app.pts = append(app.pts, [2]float64{x, v})
		}
		if v := num(r[2]); !math.IsNaN(v) {
			ref.pts = append(ref.pts, [2]float64{x, v})
		}
	}
	c.series = []series{app, ref}
	return c, nil
}

func failoverChart(rows [][]string) (*chart, error) {
	c := &chart{title: "frames delivered per ms of send time, link-down at t=0, active-backup", xlabel: "ms (send time) after the link-down", ylabel: "frames delivered per ms", vline: true}
	cols := []color.RGBA{{0x1f, 0x77, 0xb4, 0xff}, {0xd6, 0x27, 0x28, 0xff}, {0x2c, 0xa0, 0x2c, 0xff}}
	byMode := map[string]*series{}
	var order []string
	for _, r := range rows {
		if len(r) < 4 {
			return nil, fmt.Errorf("row %v: want mode,run,t_ms,frames", r)
		}
		if r[1] != "0" {
			continue
		}
		s := byMode[r[0]]
		if s == nil {
			s = &series{name: "carrier " + r[0], col: cols[len(order)%len(cols)]}
			if r[0] == "polling" {
				s.name = "miimon polling"
			}
			byMode[r[0]] = s
			order = append(order, r[0])
		}
		s.pts = append(s.pts, [2]float64{num(r[2]), num(r[3])})
	}
	for _, m := range order {
		c.series = append(c.series, *byMode[m])
	}
	return c, nil
}

type series struct {
	name string
	col  color.RGBA
	pts  [][2]float64
}

type chart struct {
	title, xlabel, ylabel string
	series                []series
	markers, vline        bool
}

func (c *chart) points() (n int) {
	for _, s := range c.series {
		n += len(s.pts)
	}
	return n
}

// ticks returns about n round tick values covering [lo, hi].
func ticks(lo, hi float64, n int) []float64 {
	if hi <= lo {
		hi = lo + 1
	}
	raw := (hi - lo) / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	var t []float64
	for v := math.Floor(lo/step) * step; v <= hi+step/2; v += step {
		t = append(t, v)
	}
	return t
}

func label(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e6 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

func (c *chart) write(path string) error {
	const w, h, k = 1000, 600, 2
	const left, right, top, bottom = 100, 30, 60, 80
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	fill(img, 0, 0, w, h, color.White)
	black := color.RGBA{0, 0, 0, 0xff}
	grid := color.RGBA{0xdd, 0xdd, 0xdd, 0xff}
	xmin, xmax, ymax := math.Inf(1), math.Inf(-1), 0.0
	for _, s := range c.series {
		for _, p := range s.pts {
			if math.IsNaN(p[0]) || math.IsNaN(p[1]) {
				continue
			}
			xmin, xmax, ymax = math.Min(xmin, p[0]), math.Max(xmax, p[0]), math.Max(ymax, p[1])
		}
	}
	if math.IsInf(xmin, 0) {
		return errors.New("no points")
	}
	xt := ticks(xmin, xmax, 8)
	yt := ticks(0, ymax*1.1, 6)
	x0, x1, y1 := xt[0], xt[len(xt)-1], yt[len(yt)-1]
	if x0 > xmin {
		x0 = xmin
	}
	px := func(x float64) int { return left + int((x-x0)/(x1-x0)*float64(w-left-right)) }
	py := func(y float64) int { return h - bottom - int(y/y1*float64(h-top-bottom)) }
	for _, v := range yt {
		fill(img, left, py(v), w-left-right, 1, grid)
		s := label(v)
		drawText(img, left-10-textWidth(s, k), py(v)-7, k, s, black)
	}
	for _, v := range xt {
		fill(img, px(v), top, 1, h-top-bottom, grid)
		s := label(v)
		drawText(img, px(v)-textWidth(s, k)/2, h-bottom+10, k, s, black)
	}
	fill(img, left, top, 2, h-top-bottom, black)
	fill(img, left, h-bottom, w-left-right, 2, black)
	if c.vline && x0 < 0 && x1 > 0 {
		fill(img, px(0), top, 2, h-top-bottom, color.RGBA{0x88, 0x88, 0x88, 0xff})
	}
	drawText(img, (w-textWidth(c.title, k))/2, 20, k, c.title, black)
	drawText(img, (w-textWidth(c.xlabel, k))/2, h-35, k, c.xlabel, black)
	drawTextUp(img, 20, (h+textWidth(c.ylabel, k))/2, k, c.ylabel, black)
	for i, s := range c.series {
		pts := append([][2]float64(nil), s.pts...)
		sort.Slice(pts, func(a, b int) bool { return pts[a][0] < pts[b][0] })
		for j := 1; j < len(pts); j++ {
			line(img, px(pts[j-1][0]), py(pts[j-1][1]), px(pts[j][0]), py(pts[j][1]), s.col)
		}
		if c.markers {
			for _, p := range pts {
				fill(img, px(p[0])-4, py(p[1])-4, 9, 9, s.col)
				v := strconv.FormatFloat(p[1], 'f', 2, 64)
				drawText(img, px(p[0])+8, py(p[1])-20+i*26, k, v, s.col)
			}
		}
		// legend, top right
		lx, ly := w-right-330, top+10+i*24
		fill(img, lx, ly+4, 30, 6, s.col)
		drawText(img, lx+40, ly, k, s.name, black)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// line draws a 2-pixel line (Bresenham).
func line(img *image.RGBA, xa, ya, xb, yb int, c color.Color) {
	dx, dy := abs(xb-xa), -abs(yb-ya)
	sx, sy := 1, 1
	if xa > xb {
		sx = -1
	}
	if ya > yb {
		sy = -1
	}
	e := dx + dy
	for {
		fill(img, xa, ya, 2, 2, c)
		if xa == xb && ya == yb {
			return
		}
		e2 := 2 * e
		if e2 >= dy {
			e += dy
			xa += sx
		}
		if e2 <= dx {
			e += dx
			ya += sy
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}
