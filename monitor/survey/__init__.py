"""Post-call CSAT surveys: FastAGI server, callback originate, the low-score webhook, opt-out list (issue 6).

Wiring (``monitor.daemon``): ``SurveyServer(SurveyPolicy(policy_config(s)), lookup=..., on_result=...)``, optionally
``CallbackScheduler(callback_config(s), ...)`` fed with ``CallClosed`` records; every answer goes to
``Ingest.survey`` (call, metrics, store) and the webhook.
"""
