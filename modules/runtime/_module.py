from bunbase import NavItem, modules

module = modules.module(
    "runtime",
    api_prefix="",
    depends_on=[],
    description="Operator controls for the async runtime: jobs and the DLQ, schedules, "
    "workflow runs and events.",
    nav=[
        NavItem("Runtime", "Jobs", "runtime_studio.jobs", order=20, icon="jobs"),
        NavItem("Runtime", "Scheduler", "runtime_studio.schedules", order=30, icon="clock"),
        NavItem("Runtime", "Workflows", "runtime_studio.workflows", order=40, icon="activity"),
        NavItem("Runtime", "Events", "runtime_studio.events", order=50, icon="bolt"),
    ],
)
