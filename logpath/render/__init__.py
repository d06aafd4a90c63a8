"""Renderers: terminal timeline, PNG/SVG sequence diagram, HTML report.

The package itself imports nothing heavy: matplotlib loads only where a picture is drawn.
"""

# Diagrams are drawn for the first this many connections of a report (each takes ~0.1-0.5 s).
DIAGRAM_LIMIT = 50
