package linking

import (
	"reflect"
	"slices"
)

// MetadataPolicy says what of a secondary's metadata moves to the primary
// when users are linked (with several secondaries, one after the other).
// Auth0 discards the secondary's metadata when it links; the zero value moves
// nothing, and the secondary's metadata is still kept in Result.Linked.
//
// Moving is additive: a key the primary has keeps the primary's value (nested
// objects are merged key by key), nothing is ever deleted from the primary,
// and no update is written when nothing changes.
type MetadataPolicy struct {
	// MergeUserMetadata moves the secondary's user_metadata into the
	// primary's, with MergeUserMetadataFunc (FillMerge when nil).
	MergeUserMetadata bool
	// MergeUserMetadataFunc, when set, computes the primary's new
	// user_metadata from the primary's and the secondary's. Keys it leaves
	// out or sets to nil are left as they are on the primary.
	MergeUserMetadataFunc MergeFunc
	// AppMetadataKeys lists the app_metadata keys allowed to move from the
	// secondary, with FillMerge. app_metadata holds what the application
	// decides about a user (roles, plans, flags): moving it carries
	// privileges from one account to another, so no key moves unless listed.
	AppMetadataKeys []string
}

// MergeFunc merges a secondary's metadata into a primary's and returns the
// primary's new metadata. It must not modify its arguments.
type MergeFunc func(primary, secondary map[string]any) map[string]any

// FillMerge is the default MergeFunc: it returns primary with the keys it
// lacks taken from secondary. Where both hold an object under the same key,
// the objects are merged the same way, key by key; otherwise the primary's
// value wins.
func FillMerge(primary, secondary map[string]any) map[string]any {
	out := make(map[string]any, len(primary)+len(secondary))
	for k, v := range primary {
		out[k] = v
	}
	for k, sv := range secondary {
		pv, ok := out[k]
		if !ok || pv == nil {
			out[k] = sv
			continue
		}
		pm, pok := pv.(map[string]any)
		sm, sok := sv.(map[string]any)
		if pok && sok {
			out[k] = FillMerge(pm, sm)
		}
	}
	return out
}

// plan returns the metadata update that moves the secondaries' metadata
// into the primary's as the policy says, one secondary after the other, and
// the keys it writes, as "user_metadata.KEY" and "app_metadata.KEY", sorted.
// No keys: nothing to write.
func (p MetadataPolicy) plan(primary Metadata, secondaries []Metadata) (Metadata, []string) {
	merge := p.MergeUserMetadataFunc
	if merge == nil {
		merge = FillMerge
	}
	user, app := primary.UserMetadata, primary.AppMetadata
	for _, s := range secondaries {
		if p.MergeUserMetadata && len(s.UserMetadata) > 0 {
			user = merge(user, s.UserMetadata)
		}
		if len(p.AppMetadataKeys) > 0 && len(s.AppMetadata) > 0 {
			allowed := make(map[string]any, len(p.AppMetadataKeys))
			for k, v := range s.AppMetadata {
				if slices.Contains(p.AppMetadataKeys, k) {
					allowed[k] = v
				}
			}
			app = FillMerge(app, allowed)
		}
	}
	var update Metadata
	var keys []string
	update.UserMetadata, keys = changed(primary.UserMetadata, user, "user_metadata.", keys)
	update.AppMetadata, keys = changed(primary.AppMetadata, app, "app_metadata.", keys)
	slices.Sort(keys)
	return update, keys
}

// changed returns the top-level keys of merged whose value differs from
// before's, never a key set to nil (that would delete it in Auth0), and
// appends their names to keys.
func changed(before, merged map[string]any, prefix string, keys []string) (map[string]any, []string) {
	var out map[string]any
	for k, v := range merged {
		if v == nil {
			continue
		}
		if old, ok := before[k]; ok && reflect.DeepEqual(old, v) {
			continue
		}
		if out == nil {
			out = make(map[string]any)
		}
		out[k] = v
		keys = append(keys, prefix+k)
	}
	return out, keys
}
