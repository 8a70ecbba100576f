// Package callready tells a CRM backend, in real time, which WhatsApp
// contacts its agents may call right now.
//
// Meta lets a business call a WhatsApp user only with that user's
// permission: an accepted permission request (7 days, or permanent), a call
// from the user (even a missed one grants a call back for 7 days), or the
// business profile. Permissions expire silently and users revoke them, and
// Meta's API answers one user at a time. callready builds the missing list
// from Meta's webhooks and local state:
//
//   - package permission: the Tracker (merge rules, expiry, Eligible,
//     Subscribe, Explain, call and request limits);
//   - package store: the storage contract, with store/memory (in process)
//     and store/sql (SQLite and PostgreSQL) adapters, and store/storetest,
//     the conformance suite for adapters;
//   - package webhook: an http.Handler that verifies, parses and records
//     Meta's webhook deliveries;
//   - package cloudapi: a client for Meta's Cloud API calls that permissions
//     need (send a permission request, GET call_permissions, GET settings),
//     with cloudapi/cloudapitest, a fake of them for tests and demos;
//   - package reconcile: checks the list against Meta's call_permissions
//     answers within a rate and records each disagreement in the ledger;
//   - examples/: reference servers built only on the public API.
//
// This root package holds no code; import the packages above.
package callready
