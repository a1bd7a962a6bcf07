"""A self-contained `report.html` for one run: metrics tables and the figures
embedded as base64 PNG (the file opens anywhere, alone). Pure: strings in, a
string out; `jaxinv.runs.evaluation` writes it."""

import base64
import html
import math

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:70em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:.25em .6em;text-align:right}
th{background:#eee}td:first-child,th:first-child{text-align:left}
figure{margin:1.5em 0}figcaption{font-size:.9em;color:#555}img{max-width:100%}
.note{color:#555;font-size:.9em}
"""


def format_value(value) -> str:
  if isinstance(value, bool) or value is None:
    return html.escape(str(value))
  if isinstance(value, float):
    return "nan" if math.isnan(value) else f"{value:.4f}"
  return html.escape(str(value))


def table(header, rows) -> str:
  """An HTML table; cells are escaped, floats shown with 4 decimals."""
  head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
  body = "".join("<tr>" + "".join(f"<td>{format_value(c)}</td>" for c in row) + "</tr>" for row in rows)
  return f"<table><tr>{head}</tr>{body}</table>"


def png_data_uri(png: bytes) -> str:
  return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def render(title: str, sections, figures=(), notes=()) -> str:
  """`sections`: `(heading, header, rows)` tables; `figures`: `(caption, png bytes)`;
  `notes`: plain sentences shown under the title."""
  parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
           f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"]
  parts += [f"<p class='note'>{html.escape(n)}</p>" for n in notes]
  for heading, header, rows in sections:
    parts.append(f"<h2>{html.escape(heading)}</h2>{table(header, rows)}")
  if figures:
    parts.append("<h2>Figures</h2>")
  for caption, png in figures:
    parts.append(f"<figure><img alt='{html.escape(caption, quote=True)}' src='{png_data_uri(png)}'>"
                 f"<figcaption>{html.escape(caption)}</figcaption></figure>")
  parts.append("</body></html>")
  return "\n".join(parts)
