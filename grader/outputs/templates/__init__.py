"""Jinja2 templates and the stylesheet of the HTML reports (rendered by grader.outputs.html_report)."""
