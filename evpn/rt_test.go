package evpn

import (
	"testing"

	"github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/vxswitch/vxswitch/encap"
)

func TestParseRouteTarget(t *testing.T) {
	for _, tc := range []struct {
		in    string
		want  RouteTarget
		gobgp string // what GoBGP's codec prints for it
	}{
		{"65000:10129", RouteTarget{RTTwoOctetAS, 65000, 10129}, "65000:10129"},
		{"1:4294967295", RouteTarget{RTTwoOctetAS, 1, 4294967295}, "1:4294967295"},
		{"4200000001:129", RouteTarget{RTFourOctetAS, 4200000001, 129}, "64086.59905:129"}, // GoBGP prints asdot
		{"192.0.2.1:7", RouteTarget{RTIPv4, 0xc0000201, 7}, "192.0.2.1:7"},
	} {
		got, err := ParseRouteTarget(tc.in)
		if err != nil || got != tc.want || got.String() != tc.in {
			t.Errorf("ParseRouteTarget(%q) = %+v (%s), %v; want %+v", tc.in, got, got, err, tc.want)
			continue
		}
		// through GoBGP's UPDATE codec and back
		_, attrs := wireAttrs(t, []bgp.PathAttributeInterface{mustMP(t), bgp.NewPathAttributeExtendedCommunities([]bgp.ExtendedCommunityInterface{got.community()})})
		var back []RouteTarget
		for _, a := range attrs {
			if ecs, ok := a.(*bgp.PathAttributeExtendedCommunities); ok {
				for _, ec := range ecs.Value {
					if ec.String() != tc.gobgp {
						t.Errorf("%s: GoBGP reads %s", tc.in, ec)
					}
					if rt, ok := routeTargetOf(ec); ok {
						back = append(back, rt)
					}
				}
			}
		}
		if len(back) != 1 || back[0] != tc.want {
			t.Errorf("%s: read back %+v", tc.in, back)
		}
	}
	for _, bad := range []string{"", "65000", "65000:", ":5", "0:5", "x:5", "65000:-1", "65000:4294967296",
		"4200000001:65536", "192.0.2.1:65536", "2001:db8::1:5", "4294967296:1", "65000:1:2"} {
		if rt, err := ParseRouteTarget(bad); err == nil {
			t.Errorf("ParseRouteTarget(%q) = %v, want an error", bad, rt)
		}
	}
}

func mustMP(t *testing.T) bgp.PathAttributeInterface {
	t.Helper()
	nlri, err := bgp.NewEVPNMulticastEthernetTagRoute(rd(testSite.routerID, 129), 0, testSite.vtep)
	if err != nil {
		t.Fatal(err)
	}
	mp, err := mpReach(nlri, testSite.nexthop)
	if err != nil {
		t.Fatal(err)
	}
	return mp
}

// TestManualRouteTarget: a segment with a route target set by hand
// exports it alone (plain and esp) and imports only routes carrying it (or,
// in plain mode, carrying none); the auto-derived ones no longer count.
func TestManualRouteTarget(t *testing.T) {
	manual := RouteTarget{RTFourOctetAS, 4200000001, 129}
	for _, esp := range []bool{false, true} {
		s := testSite
		s.esp, s.asn = esp, 4200000001
		s.manual = map[encap.VNI]RouteTarget{129: manual}
		nlri, attrs := wire(t)(imetRoute(s, 129))
		r, err := parseRoute(nlri, attrs, s.asn)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.targets) != 1 || r.targets[0] != manual {
			t.Errorf("esp %v: exported route targets %v, want only %v", esp, r.targets, manual)
		}
		if !r.imports(129, esp, s.manual) || r.imports(130, esp, s.manual) {
			t.Errorf("esp %v: own route not imported by segment 129 alone", esp)
		}
		// an auto-derived route (another site without the setting) is not
		// imported by the segment with it, nor is one without targets in esp
		auto := testSite
		auto.esp, auto.asn = esp, 4200000001
		nlri, attrs = wire(t)(imetRoute(auto, 129))
		ra, _ := parseRoute(nlri, attrs, auto.asn)
		if ra.imports(129, esp, s.manual) {
			t.Errorf("esp %v: auto-derived route targets %v imported where %v is set", esp, ra.targets, manual)
		}
		if (route{}).imports(129, esp, s.manual) != !esp {
			t.Errorf("esp %v: a route with no route target", esp)
		}
		// and other segments keep the auto-derived rule
		if !ra.imports(129, esp, map[encap.VNI]RouteTarget{130: manual}) {
			t.Errorf("esp %v: a setting for segment 130 changed segment 129", esp)
		}
	}
}

// FuzzParseRouteTarget: any string is a route target that prints back as
// itself, or an error.
func FuzzParseRouteTarget(f *testing.F) {
	for _, s := range []string{"65000:10129", "4200000001:129", "192.0.2.1:7", "1:4294967295", "x", "0:0", "01:2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		rt, err := ParseRouteTarget(s)
		if err != nil {
			return
		}
		again, err := ParseRouteTarget(rt.String())
		if err != nil || again != rt {
			t.Fatalf("%q -> %+v -> %q -> %+v, %v", s, rt, rt.String(), again, err)
		}
		if back, ok := routeTargetOf(rt.community()); !ok || back != rt {
			t.Fatalf("%+v -> community -> %+v", rt, back)
		}
	})
}
