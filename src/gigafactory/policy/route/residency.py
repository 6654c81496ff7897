"""``residency``: a job runs only on the sites and in the countries it names (the data may go nowhere else).

A filter: it rules sites out and the chooser picks among the rest. Every route profile applies it, named or not,
since a job's residency is a promise, not a preference. A job that names neither sites nor countries may go
anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from gigafactory.core.jobs import Job
from gigafactory.policy.base import ROUTE, PolicyFactory, SiteView


@dataclass(frozen=True, slots=True)
class Residency:
    name: str = "residency"

    def excludes(self, job: Job, site: SiteView) -> str | None:
        if job.sites is not None and site.name not in job.sites:
            return f"the job may run only on {', '.join(job.sites)}"
        if job.countries is not None and site.country not in job.countries:
            return f"the job may run only in {', '.join(job.countries)}; {site.name} is in {site.country}"
        return None


ROUTE.add("residency", PolicyFactory(Residency, "filter: only the sites and countries the job allows", {}))
