// Package continuous holds the end-to-end test and benchmark of continuous
// access: three ferry nodes with the netns data plane (tunnel/tunneltest
// agents), the development OpenID Provider with refresh tokens, and the
// entitlement watcher and revalidation of authn and profiles running on
// every node, as ferryd runs them. A decision that takes access away at
// the identity provider must end the user's tunnel on every node within
// one revalidation. The package has no code of its own outside tests.
package continuous
