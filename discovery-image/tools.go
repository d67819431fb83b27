//go:build tools

package discoveryimage

// The u-root builder and the u-root commands baked into the image, pinned in
// go.mod so that build.sh builds them at the module's versions.
import (
	_ "github.com/u-root/u-root"
	_ "github.com/u-root/u-root/cmds/core/init"
)
