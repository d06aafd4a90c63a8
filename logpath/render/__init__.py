"""Renderers: terminal timeline, PNG/SVG sequence diagram, HTML report."""
