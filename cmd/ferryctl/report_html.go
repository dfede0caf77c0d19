package main

import (
	"html/template"
	"io"
	"sort"
	"time"

	"github.com/ferryvpn/ferry/cmd/internal/wire"
)

// accessHTML is the access report as one self-contained HTML file: no
// script, no outside resource, so it opens the same anywhere and can be
// archived with the evidence.
var accessHTML = template.Must(template.New("access").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>ferry {{.Title}}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em; color: #111; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.5em; text-align: left; }
th { background: #eee; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.source { margin: 1em 0; padding: 0.5em; background: #f6f6f6; border-left: 4px solid #888; }
</style>
</head>
<body>
<h1>{{.Heading}}</h1>
<p>Generated {{.Generated}}.{{if .Query}} Filter:{{range .Query}} {{.}}{{end}}.{{end}}</p>
<p class="source" id="source">{{.Source}}</p>
<table id="access">
<thead><tr>{{range .Columns}}<th>{{.}}</th>{{end}}</tr></thead>
<tbody>
{{range .Rows}}<tr>{{range $i, $c := .}}<td>{{$c}}</td>{{end}}</tr>
{{end}}</tbody>
</table>
<p>{{len .Rows}} rows.</p>
</body>
</html>
`))

func writeAccessHTML(w io.Writer, rep wire.AccessReport) error {
	var query []string
	for k, v := range rep.Query {
		query = append(query, k+"="+v)
	}
	sort.Strings(query)
	rows := make([][]string, 0, len(rep.Rows))
	for _, r := range rep.Rows {
		rows = append(rows, accessCells(r))
	}
	return writeHTML(w, "access report", "Access report", query, sourceLine(rep.Source), accessColumns, rows)
}

// writeHTML writes one report as a self-contained HTML file.
func writeHTML(w io.Writer, title, heading string, query []string, source string, columns []string, rows [][]string) error {
	return accessHTML.Execute(w, map[string]any{
		"Title": title, "Heading": heading, "Generated": time.Now().UTC().Format(time.RFC3339), "Query": query,
		"Source": source, "Columns": columns, "Rows": rows,
	})
}
