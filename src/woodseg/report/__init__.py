"""The analysis report: one self-contained HTML page comparing a baseline run with W-OoD runs."""

from woodseg.report.html import ReportInputs, write_report

__all__ = ["ReportInputs", "write_report"]
