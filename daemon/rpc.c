/*
 * rpc: the one route table. Each line names the method, the roles allowed
 * (admin may call everything), which request field a scoped principal must
 * match, and what serves it: a SQL function of the allot schema taking and
 * returning proto3 JSON (sql/README.md), or a handler of the daemon's own. New
 * methods are a line here and a function in a migration.
 */
#include "allot/v1/admin.pb-c.h"
#include "allot/v1/audit.pb-c.h"
#include "allot/v1/allocations.pb-c.h"
#include "allot/v1/events.pb-c.h"
#include "allot/v1/fairshare.pb-c.h"
#include "allot/v1/incidents.pb-c.h"
#include "allot/v1/ledger.pb-c.h"
#include "allot/v1/reports.pb-c.h"
#include "allot/v1/usage.pb-c.h"

#include "ingest.h"
#include "ledger.h"
#include "rpc.h"
#include "share.h"
#include "statement.h"
#include "telemetry.h"

#define ADMIN ROLE_BIT(ROLE_ADMIN)
#define READERS (ROLE_BIT(ROLE_ADMIN) | ROLE_BIT(ROLE_AUDITOR))
#define COLLECTORS (ROLE_BIT(ROLE_ADMIN) | ROLE_BIT(ROLE_COLLECTOR))
/* Who reads what a site reported: admin, auditors, and the site's own collectors. */
#define SITE_READERS (READERS | ROLE_BIT(ROLE_COLLECTOR))
#define BALANCE_READERS \
	(ROLE_BIT(ROLE_ADMIN) | ROLE_BIT(ROLE_AUDITOR) | ROLE_BIT(ROLE_PROJECT) | \
	    ROLE_BIT(ROLE_SCHEDULER))

/* Who holds budget for jobs: schedulers for their site, projects for their own jobs. */
#define LIEN_HOLDERS (ROLE_BIT(ROLE_ADMIN) | ROLE_BIT(ROLE_SCHEDULER) | ROLE_BIT(ROLE_PROJECT))
#define QUOTERS (LIEN_HOLDERS | ROLE_BIT(ROLE_AUDITOR))

/* Fair share: a site's scheduler asks for its jobs' factors; a project reads its own standing. */
#define PRIORITY_READERS (READERS | ROLE_BIT(ROLE_SCHEDULER))
#define SHARE_READERS (PRIORITY_READERS | ROLE_BIT(ROLE_PROJECT))

#define ADMIN_SQL(method, roles, fn) \
	{ \
		&allot__v1__admin__descriptor, method, roles, NULL, NULL, fn, NULL \
	}

/* An allocation's life (sql/migrations/0011): admin changes it, auditors read its changes. */
#define LIFE_SQL(method, roles, fn) \
	{ \
		&allot__v1__allocations__descriptor, method, roles, NULL, NULL, fn, NULL \
	}

static const struct twirp_route routes[] = {
    ADMIN_SQL("CreateProgram", ADMIN, "rpc_create_program"),
    ADMIN_SQL("ListPrograms", READERS, "rpc_list_programs"),
    ADMIN_SQL("CreateOrganization", ADMIN, "rpc_create_organization"),
    ADMIN_SQL("ListOrganizations", READERS, "rpc_list_organizations"),
    ADMIN_SQL("CreateProject", ADMIN, "rpc_create_project"),
    ADMIN_SQL("AddProjectUser", ADMIN, "rpc_add_project_user"),
    ADMIN_SQL("ListProjects", READERS, "rpc_list_projects"),
    ADMIN_SQL("CreateSite", ADMIN, "rpc_create_site"),
    ADMIN_SQL("ListSites", READERS, "rpc_list_sites"),
    ADMIN_SQL("CreateResource", ADMIN, "rpc_create_resource"),
    ADMIN_SQL("SetResourceWeight", ADMIN, "rpc_set_resource_weight"),
    ADMIN_SQL("ListResources", READERS, "rpc_list_resources"),
    ADMIN_SQL("CreateAllocation", ADMIN, "rpc_create_allocation"),
    ADMIN_SQL("ListAllocations", READERS, "rpc_list_allocations"),
    ADMIN_SQL("CreatePrincipal", ADMIN, "rpc_create_principal"),
    ADMIN_SQL("ListPrincipals", READERS, "rpc_list_principals"),
    ADMIN_SQL("RemovePrincipal", ADMIN, "rpc_remove_principal"),
    ADMIN_SQL("AddSiteAccount", ADMIN, "rpc_add_site_account"),
    ADMIN_SQL("ListSiteAccounts", READERS, "rpc_list_site_accounts"),
    ADMIN_SQL("RemoveSiteAccount", ADMIN, "rpc_remove_site_account"),
    LIFE_SQL("Deposit", ADMIN, "rpc_deposit"),
    LIFE_SQL("Move", ADMIN, "rpc_move"),
    LIFE_SQL("Refund", ADMIN, "rpc_refund"),
    LIFE_SQL("Adjust", ADMIN, "rpc_adjust"),
    LIFE_SQL("SetCreditLimit", ADMIN, "rpc_set_credit_limit"),
    LIFE_SQL("ListChanges", READERS, "rpc_list_changes"),
    {&allot__v1__usage__descriptor, "Ingest", COLLECTORS, "site", NULL, NULL, ingest_handle},
    {&allot__v1__usage__descriptor, "IngestMetrics", COLLECTORS, "site", NULL, NULL,
        telemetry_ingest_handle},
    {&allot__v1__usage__descriptor, "ListJobs", READERS | ROLE_BIT(ROLE_PROJECT), NULL, "project",
        "rpc_list_jobs", NULL},
    {&allot__v1__usage__descriptor, "GetCompleteness", SITE_READERS, "site", NULL,
        "rpc_get_completeness", NULL},
    {&allot__v1__usage__descriptor, "GetSiteTotals", SITE_READERS, "site", NULL,
        "rpc_get_site_totals", NULL},
    {&allot__v1__ledger__descriptor, "GetBalance", BALANCE_READERS, NULL, "project",
        "rpc_get_balance", NULL},
    /*
     * The account is the site's name for it (allot.site_accounts): only the database can
     * tell its project, so a project principal's scope is checked there, after resolution
     * (allot.check_account_caller, allot.reserve_group).
     */
    {&allot__v1__ledger__descriptor, "Quote", QUOTERS, "site", NULL, NULL, ledger_quote},
    {&allot__v1__ledger__descriptor, "Reserve", LIEN_HOLDERS, "site", NULL, NULL, ledger_reserve},
    {&allot__v1__ledger__descriptor, "ReserveCampaign", LIEN_HOLDERS, "site", "project",
        "rpc_reserve_campaign", NULL},
    /* A lien's project is checked in SQL (allot.check_lien_caller): these name none. */
    {&allot__v1__ledger__descriptor, "Settle", LIEN_HOLDERS, "site", NULL, "rpc_settle", NULL},
    {&allot__v1__ledger__descriptor, "Release", LIEN_HOLDERS, "site", NULL, "rpc_release", NULL},
    {&allot__v1__ledger__descriptor, "Heartbeat", LIEN_HOLDERS, "site", NULL, NULL,
        ledger_heartbeat},
    {&allot__v1__audit__descriptor, "ListBlocks", READERS, NULL, NULL, "rpc_list_blocks", NULL},
    /* Credits move money back: only the operator declares an incident. */
    {&allot__v1__incidents__descriptor, "Declare", ADMIN, NULL, NULL, "rpc_declare_incident", NULL},
    {&allot__v1__incidents__descriptor, "List", READERS, NULL, NULL, "rpc_list_incidents", NULL},
    {&allot__v1__incidents__descriptor, "Show", READERS, NULL, NULL, "rpc_show_incident", NULL},
    {&allot__v1__events__descriptor, "List", READERS | ROLE_BIT(ROLE_PROJECT), NULL, "project",
        "rpc_list_events", NULL},
    /* Every principal may read the thresholds (they say when its events come); admin sets them. */
    {&allot__v1__events__descriptor, "ListThresholds", READERS | LIEN_HOLDERS | COLLECTORS, NULL,
        NULL, "rpc_list_thresholds", NULL},
    {&allot__v1__events__descriptor, "SetThresholds", ADMIN, NULL, NULL, "rpc_set_thresholds",
        NULL},
    {&allot__v1__fair_share__descriptor, "GetPriorities", PRIORITY_READERS, "site", NULL, NULL,
        share_get_priorities},
    {&allot__v1__fair_share__descriptor, "Explain", SHARE_READERS, NULL, "project", NULL,
        share_explain},
    {&allot__v1__fair_share__descriptor, "WhatIf", SHARE_READERS, NULL, "project", NULL,
        share_what_if},
    {&allot__v1__fair_share__descriptor, "SetShares", ADMIN, NULL, NULL, "rpc_set_shares", NULL},
    /* A signed statement: a project's own, or any for admin and auditors (daemon/statement.c). */
    {&allot__v1__reports__descriptor, "GetStatement", READERS | ROLE_BIT(ROLE_PROJECT), NULL,
        "project", NULL, statement_get},
};

const struct twirp_route *
rpc_routes(size_t *n)
{
	*n = sizeof(routes) / sizeof(routes[0]);
	return routes;
}
