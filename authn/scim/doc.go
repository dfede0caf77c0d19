// Package scim is ferry's SCIM 2.0 service provider (RFC 7643, RFC 7644):
// the endpoints through which an identity provider such as Okta or
// Microsoft Entra ID pushes users and groups, served under /scim/v2.
//
// What it does:
//   - /Users and /Groups with create, get, list (filter, startIndex,
//     count), replace, PATCH (including the shapes Okta and Entra ID send:
//     capitalised ops, path-less replace of {"active": false}, Entra's
//     "True"/"False" strings, member removal by value filter or by value
//     list) and delete; /ServiceProviderConfig, /ResourceTypes, /Schemas.
//     Protocol handling (routing, schema validation, filter parsing, list
//     and error bodies with their scimType) is github.com/elimity-com/scim
//     with github.com/scim2/filter-parser/v2; this package stores the
//     resources and applies PATCH operations to them.
//   - Bearer-token authentication. The token is minted by Rotate, shown
//     once, stored sealed under the cluster master key (cluster/seal) and
//     compared in constant time.
//   - Binding: a SCIM user is bound to ferry's user record by its
//     externalId, which must be the value the identity provider puts in
//     the ID token's user ID claim (Okta: the user's ID, which is sub;
//     Entra ID: the objectId, with oidc.user_id_claim: oid). The ferry
//     user ID is authn.UserKey(Config.Issuer, externalId). externalId is
//     required and cannot change: a different externalId is a different
//     person.
//   - Every change reaches authn through its domain operations: attributes
//     and groups through Users.Provision, active: false and delete through
//     Users.SetDisabled, which ends the user's sessions in the same
//     transaction; watchers of users/ revoke the user's peers and the data
//     plane drops them on every node. active: true enables only a user
//     SCIM disabled: an administrator's disable sticks.
//   - Every write, and every refused request, is an audit event (admin,
//     action scim.*).
//
// What it does not do: bulk operations, sorting, ETag preconditions,
// /Me, password changes, or enterprise extension attributes beyond
// storing what is sent. Group names given to users are the groups'
// displayName (or externalId, see Config.GroupName), so they match what
// the ID token's groups claim carries. Once the provider pushes any group,
// SCIM decides every provisioned user's groups; until then, sign-ins do.
//
// Stored records (all under scim/, owned by this package):
//
//	scim/token                   tokenRecord: the bearer token, sealed
//	scim/users/<id>              userRecord
//	scim/groups/<id>             groupRecord
//	scim/idx/username/<name>     id of the user with that userName (lower case)
//	scim/idx/external/<extid>    id of the user with that externalId
package scim
