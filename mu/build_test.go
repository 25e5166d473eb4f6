package mu

import "testing"

// The tag rules of units.md §4.4, one case each.
func TestTemplates(t *testing.T) {
	out := OutMessage{Target: randomID(), Anchor: "00000000000000000000000000000003", Data: "",
		Tags: tg("Data-Protocol", "ao", "Variant", "ao.TN.1", "Type", "Message", "Reference", "3", "From-Process", "forged",
			"From-Module", "forged", "Assignments", "a,b", "Pushed-For", "kept", "Action", "X")}
	tmpl, assign := MessageTemplate(out, "P", "M", "U")
	tagsEqual(t, "message", tmpl.Tags, tg("Variant", "ao.TN.1", "Reference", "3", "Pushed-For", "kept", "Action", "X",
		"Data-Protocol", "ao", "Type", "Message", "From-Process", "P", "From-Module", "M", "Pushed-For", "U"))
	if tmpl.Data != " " || tmpl.Target != out.Target || tmpl.Anchor != out.Anchor || len(assign) != 2 || assign[1] != "b" {
		t.Fatalf("message template %+v %v", tmpl, assign)
	}
	cronT, _ := MessageTemplate(out, "P", "", "")
	if _, ok := tagValue(cronT.Tags, "From-Module"); ok {
		t.Fatal("unknown module must not produce an empty From-Module")
	}

	sp := OutSpawn{Data: "NODATA", Tags: tg("Data-Protocol", "ao", "Variant", "ao.N.1", "Type", "Process", "From-Module", "old", "Module", "MOD")}
	st, err := SpawnTemplate(sp, "P", "PM", "SCHED", "")
	if err != nil {
		t.Fatal(err)
	}
	tagsEqual(t, "spawn", st.Tags, tg("Variant", "ao.N.1", "From-Module", "PM", "Module", "MOD", "Variant", "ao.N.1",
		"Data-Protocol", "ao", "Type", "Process", "From-Process", "P", "Scheduler", "SCHED"))
	if _, err := SpawnTemplate(OutSpawn{Tags: tg("Type", "Process")}, "P", "", "", ""); err == nil {
		t.Fatal("spawn without Module accepted")
	}
	rep := SpawnedTemplate(sp, "P", "NEW")
	tagsEqual(t, "spawned", rep.Tags, tg("From-Module", "old", "Module", "MOD", "Data-Protocol", "ao", "Type", "Message",
		"Process", "NEW", "Action", "Spawned", "Variant", "ao.N.1"))

	r, err := ParseResult([]byte(`{"Messages":[{"Target":"t","Tags":[]},{"Target":"t","Anchor":"a","Tags":[{"name":"n"}]},
		{"Target":"t","Anchor":"a","Tags":[{"name":"n","value":"v"}],"Data":"d"}],"Assignments":[{"Processes":["p"],"Message":"m","BaseLayer":true,"Exclude":["Data"]}]}`))
	if err != nil || len(r.Messages) != 1 || r.Messages[0].Data != "d" || len(r.Assignments) != 1 || !r.Assignments[0].BaseLayer {
		t.Fatalf("ParseResult filtering: %+v %v", r, err)
	}
}
