"""Post-call CSAT surveys: FastAGI server, callback originate, results, opt-out list (issue 6).

Wiring (``monitor.app``): ``SurveyServer(SurveyPolicy(policy_config(s)), lookup=..., on_result=ResultFanout(...))``,
optionally ``CallbackScheduler(callback_config(s), ...)`` fed with ``CallClosed`` records.
"""
