package linkingtest

import (
	"reflect"

	"github.com/idlink/linking"
)

// copyUser returns a deep copy of u: its identities, their ProfileData and
// its metadata share nothing with u.
func copyUser(u linking.User) linking.User {
	u.Identities = copyIdentities(u.Identities)
	u.AppMetadata = copyMap(u.AppMetadata)
	u.UserMetadata = copyMap(u.UserMetadata)
	return u
}

func copyIdentities(ids []linking.Identity) []linking.Identity {
	if ids == nil {
		return nil
	}
	c := make([]linking.Identity, len(ids))
	for i, id := range ids {
		c[i] = copyIdentity(id)
	}
	return c
}

func copyIdentity(id linking.Identity) linking.Identity {
	id.ProfileData = copyMap(id.ProfileData)
	return id
}

// copyMap returns a deep copy of m; nil stays nil.
func copyMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	return deepCopy(reflect.ValueOf(m)).Interface().(map[string]any)
}

// deepCopy copies the maps, slices and arrays in v, at any depth, and the
// values held in interfaces. Pointers, channels and functions are shared:
// metadata is JSON-like and holds none.
func deepCopy(v reflect.Value) reflect.Value {
	switch v.Kind() {
	case reflect.Map:
		if v.IsNil() {
			return v
		}
		c := reflect.MakeMapWithSize(v.Type(), v.Len())
		for it := v.MapRange(); it.Next(); {
			c.SetMapIndex(it.Key(), deepCopy(it.Value()))
		}
		return c
	case reflect.Slice:
		if v.IsNil() {
			return v
		}
		c := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := range v.Len() {
			c.Index(i).Set(deepCopy(v.Index(i)))
		}
		return c
	case reflect.Array:
		c := reflect.New(v.Type()).Elem()
		for i := range v.Len() {
			c.Index(i).Set(deepCopy(v.Index(i)))
		}
		return c
	case reflect.Interface:
		if v.IsNil() {
			return v
		}
		c := reflect.New(v.Type()).Elem()
		c.Set(deepCopy(v.Elem()))
		return c
	default:
		return v
	}
}
