"""What every part of Vatio shares and no part owns.

The messages in English and Spanish (:mod:`vatio.common.i18n`), YAML loading with errors that
name their place (:mod:`vatio.common.yamlconf`), the clock (:mod:`vatio.common.clock`), the
quantity vocabulary (:mod:`vatio.common.vocabulary`) and the link descriptions a driver is
handed (:mod:`vatio.common.links`). Nothing here imports from agent, drivers or simulators.
"""
