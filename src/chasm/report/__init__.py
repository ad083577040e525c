"""Refinement reports: a self-contained HTML page and a Markdown file with PNG maps.

See :func:`chasm.report.report.write_report`.
"""

from chasm.report.report import Snapshot, structure_from_folder, write_report, xray_residual_map

__all__ = ["Snapshot", "structure_from_folder", "write_report", "xray_residual_map"]
