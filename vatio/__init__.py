"""Vatio: edge agent for energy and air-quality monitoring.

In the repository the subpackages live at the top (agent/, drivers/, simulators/, common/);
this folder holds symlinks to them, so the repository, the editable install and the wheel
all import them as ``vatio.agent``, ``vatio.drivers``, ``vatio.simulators``, ``vatio.common``.
"""
