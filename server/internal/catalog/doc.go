// Package catalog is the definitions catalog: it reads tasks, roles,
// profiles, classification rules and the global params from the YAML files
// operators apply (ParseFile, ReadPaths), writes them back as YAML that
// reads back the same (Marshal), checks a set of definitions against each
// other and against the stored ones (Validate), and renders task templates
// (Render, FuncMap, TemplateRefs).
//
// Errors about definitions wrap ErrInvalid and name where the problem is:
// "FILE:LINE:COL" while parsing, the definition's source "FILE:LINE" while
// validating. The reference for operators is docs/definitions.md.
package catalog
