package postlogin

import (
	"context"
	"reflect"
	"testing"

	"github.com/idlink/linking"
	"github.com/idlink/linking/linkingtest"
)

type nopNotifier struct{}

func (nopNotifier) NotifyLinked(context.Context, linking.User, linking.Identity) error { return nil }

// fill sets v, and every exported field of a struct v, to a value that is
// not the zero value.
func fill(t *testing.T, path string, v reflect.Value) {
	t.Helper()
	switch v.Kind() {
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64:
		v.SetInt(1)
	case reflect.String:
		v.SetString("x")
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
	case reflect.Func:
		v.Set(reflect.MakeFunc(v.Type(), func([]reflect.Value) []reflect.Value {
			return make([]reflect.Value, v.Type().NumOut())
		}))
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(t, path+"."+v.Type().Field(i).Name, v.Field(i))
			}
		}
	case reflect.Interface:
		for _, x := range []any{linkingtest.NewTenant(), nopNotifier{}} {
			if reflect.TypeOf(x).Implements(v.Type()) {
				v.Set(reflect.ValueOf(x))
				return
			}
		}
		t.Fatalf("%s: no value of %v to fill it with: teach this test one", path, v.Type())
	default:
		t.Fatalf("%s: cannot fill a %v: teach this test how", path, v.Kind())
	}
}

// same reports whether a and b hold the same values: the same functions,
// pointers, maps and slices, and equal scalars.
func same(a, b reflect.Value) bool {
	switch a.Kind() {
	case reflect.Func, reflect.Pointer, reflect.Map, reflect.Slice:
		return a.Pointer() == b.Pointer() && (a.Kind() != reflect.Slice || a.Len() == b.Len())
	case reflect.Interface:
		return a.Interface() == b.Interface()
	case reflect.Struct:
		for i := range a.NumField() {
			if a.Type().Field(i).IsExported() && !same(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	}
	return a.Interface() == b.Interface()
}

// TestAutomatic_KeepsEveryField: the Linker that decides requests without
// confirm is the Handler's Linker with every field it has, confirm mode
// aside. A field added to linking.Linker and not copied fails this test.
func TestAutomatic_KeepsEveryField(t *testing.T) {
	l := &linking.Linker{}
	fill(t, "Linker", reflect.ValueOf(l).Elem())
	l.Policy.Confirm = linking.ConfirmAlways
	a := automatic(l)
	if a.Policy.Confirm != linking.ConfirmNever {
		t.Errorf("Policy.Confirm: got %v, want ConfirmNever", a.Policy.Confirm)
	}
	a.Policy.Confirm = l.Policy.Confirm
	want, got := reflect.ValueOf(l).Elem(), reflect.ValueOf(a).Elem()
	for i := range want.NumField() {
		f := want.Type().Field(i)
		if f.IsExported() && !same(want.Field(i), got.Field(i)) {
			t.Errorf("Linker.%s is not copied", f.Name)
		}
	}
}
