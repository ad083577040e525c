"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = (Path(__file__).parents[1] / ".." / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only real data in ../shared/data (skips the test when absent)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not available ({SHARED_DATA} is absent)")
    return SHARED_DATA


#: Tests moved to the ``slow`` set (CI runs it: ``pytest -q -m slow``) to keep the README's
#: ``pytest -q`` under 3 minutes on the 2-core machine. Each is a repeat of a check the default
#: set keeps in a cheaper form (another parametrisation, a smaller case) or a statistical
#: study; seconds measured on the quiet machine, 2026-12-06 (the suite took 213 s before).
SLOW_IDS = {
    "test_solver.py::test_two_set_covariance_matches_the_scatter_of_estimates[log]": 6.5,
    "test_solver.py::test_two_set_covariance_matches_the_scatter_of_estimates[nlog]": 5.6,
    "test_solver.py::test_two_set_covariance_matches_the_scatter_of_estimates[unit]": 3.9,
    "test_solver.py::test_pull_distribution[decay]": 2.0,
    "test_solver.py::test_pull_distribution[linear]": 1.4,
    "test_joint_model.py::test_jacobians_by_finite_differences[updown]": 4.3,
    "test_flipping_extras.py::test_flipping_data_jacobian_by_finite_differences[half]": 2.9,
    "test_flipping_extras.py::test_flipping_data_jacobian_by_finite_differences[hydrogen]": 2.3,
    "test_topology_cli.py::test_properties_topology_writes_json": 4.2,
    "test_topology_critical_points.py::test_morse_relation_urea_tessellation_seeds": 3.0,
    "test_density_maps.py::test_density_is_invariant_under_the_space_group[urea]": 3.0,
    "test_magnetic_amplitudes.py::test_pulls_over_realisations_and_agreement_with_the_ratio_refinement": 2.0,  # noqa: E501
    "test_constraints.py::test_block_reduction_of_many_groups[1]": 1.3,
    "test_constraints.py::test_block_reduction_of_many_groups[2]": 1.4,
    "test_types.py::test_mypy_sees_a_type_error": 1.6,
    "test_fuzz_project.py::test_structured_mutations": 1.8,
    "test_pnd_conventions.py::test_unpolarised_lambda_half_equals_cryspy[ytio3/ytio3.rcif]": 1.4,
    "test_run_control.py::test_report_prints_a_line_per_map_and_step": 3.5,
    "test_report.py::test_chasm_report_reads_the_observed_data_of_the_project_again": 3.0,
    "test_map_planes.py::test_report_draws_the_project_maps_tables": 2.3,
}


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects by marker
def pytest_collection_modifyitems(config, items):
    """Mark the tests of :data:`SLOW_IDS` ``slow`` (tests/test_style.py checks the names)."""
    for item in items:
        if f"{item.path.name}::{item.name}" in SLOW_IDS:
            item.add_marker(pytest.mark.slow)
