package console

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The traffic charts are drawn on the server as inline SVG: no script,
// styled by class from the console's stylesheet. Each series has its own
// dash pattern and a label at its end, and the data is also a table, so
// a chart is readable without colour and by screen readers.

// Chart geometry, in SVG user units.
const (
	chartW, chartH         = 800, 280
	padLeft, padRight      = 90, 110
	padTop, padBottom      = 20, 40
	plotW                  = chartW - padLeft - padRight
	plotH                  = chartH - padTop - padBottom
	maxXLabels             = 4
	seriesClasses          = 3 // s0, s1, s2 in console.css
	chartTableMaxRows      = 400
	chartTimeFormatHourly  = "2 Jan 15:00"
	chartTimeFormatDaily   = "2 Jan"
	chartValueFormatHeader = "Period"
)

// chart is one SVG chart with its data table.
type chart struct {
	ID, Title, Desc string
	W, H            int
	Series          []chartSeries
	XLabels, YTicks []chartLabel
	Table           chartTable
}

type chartSeries struct {
	Name, Class, Points string
	// EndX and EndY place the series' name at the end of its line.
	EndX, EndY int
	// Sample is the legend's short line in the series' style.
	Sample bool
}

type chartLabel struct {
	X, Y int
	Text string
}

type chartTable struct {
	Head []string
	Rows [][]string
	Cut  bool
}

// newChart draws series of values over periods (one value per period per
// series); format writes a value for people.
func newChart(id, title string, periods []time.Time, hourly bool, names []string, values [][]uint64, format func(uint64) string) chart {
	c := chart{ID: id, Title: title, W: chartW, H: chartH}
	var peak uint64
	for _, vs := range values {
		for _, v := range vs {
			peak = max(peak, v)
		}
	}
	top := niceCeil(peak)
	n := len(periods)
	x := func(i int) int {
		if n <= 1 {
			return padLeft
		}
		return padLeft + i*plotW/(n-1)
	}
	y := func(v uint64) int { return padTop + plotH - int(float64(v)/float64(top)*float64(plotH)) }
	for k, name := range names {
		var pts []string
		for i, v := range values[k] {
			pts = append(pts, strconv.Itoa(x(i))+","+strconv.Itoa(y(v)))
		}
		s := chartSeries{Name: name, Class: "s" + strconv.Itoa(k%seriesClasses), Points: strings.Join(pts, " "), Sample: true}
		if len(values[k]) > 0 {
			s.EndX, s.EndY = x(len(values[k])-1)+6, y(values[k][len(values[k])-1])+5+k*16
		}
		c.Series = append(c.Series, s)
	}
	for _, f := range []uint64{0, 2, 4} {
		v := top * f / 4
		c.YTicks = append(c.YTicks, chartLabel{X: padLeft - 8, Y: y(v), Text: format(v)})
	}
	layout := chartTimeFormatDaily
	if hourly {
		layout = chartTimeFormatHourly
	}
	step := max(1, (n+maxXLabels-1)/maxXLabels)
	for i := 0; i < n; i += step {
		c.XLabels = append(c.XLabels, chartLabel{X: x(i), Y: chartH - 12, Text: periods[i].UTC().Format(layout)})
	}
	// The description says what the chart shows, for screen readers.
	var parts []string
	for k, name := range names {
		var sum, most uint64
		at := -1
		for i, v := range values[k] {
			sum += v
			if v > most || at < 0 {
				most, at = v, i
			}
		}
		if at >= 0 {
			parts = append(parts, fmt.Sprintf("%s: %s in all, most %s at %s", name, format(sum), format(most), periods[at].UTC().Format(layout)))
		}
	}
	c.Desc = strings.Join(parts, "; ") + "."
	c.Table.Head = append([]string{chartValueFormatHeader}, names...)
	for i := range periods {
		if len(c.Table.Rows) >= chartTableMaxRows {
			c.Table.Cut = true
			break
		}
		row := []string{periods[i].UTC().Format(layout)}
		for k := range names {
			row = append(row, format(values[k][i]))
		}
		c.Table.Rows = append(c.Table.Rows, row)
	}
	return c
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten (at least 1).
func niceCeil(v uint64) uint64 {
	if v <= 1 {
		return 1
	}
	p := uint64(1)
	for p*10 <= v {
		p *= 10
	}
	for _, m := range []uint64{1, 2, 5, 10} {
		if p*m >= v {
			return p * m
		}
	}
	return p * 10
}

// humanBytes writes a byte count in decimal units.
func humanBytes(n uint64) string {
	const unit = 1000
	if n < unit {
		return strconv.FormatUint(n, 10) + " B"
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}

func count(n uint64) string { return strconv.FormatUint(n, 10) }
